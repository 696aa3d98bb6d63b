//! The bridge binary's WHIP signaling against `tests/peers/whip_mock.py`:
//! DELETE on a clean stop for each Location form, redirects, error statuses
//! and their exit codes, the stale-session retry, ICE servers from the
//! command line, OPTIONS and the answer's Link headers (with a coturn TURN
//! server), and cross-origin redirects. The mock is no WebRTC peer, so ICE
//! never connects and each run ends by its `--duration`.

mod support;

use serde_json::Value;
use std::path::PathBuf;
use support::turn::{TurnServer, PASSWORD, USER};
use support::whip_bridge::{run_bridge, token_file, BridgeRun};
use support::whip_mock::{MockTurn, WhipMock, ENDPOINT_PATH};
use support::whip_token::WHIP_AUDIENCE;

/// The stream path of the mock's endpoint, as the token's path claim.
const STREAM_PATH: &str = "inputs/cam";

/// A talk token for the mock's endpoint, written to a file.
struct Token {
    value: String,
    file: PathBuf,
    _directory: tempfile::TempDir,
}

impl Token {
    fn mint() -> Self {
        let value = support::mint_token(&["--aud", WHIP_AUDIENCE, "--path", STREAM_PATH]);
        let directory = tempfile::tempdir().unwrap();
        let file = token_file(directory.path(), &value);
        Self {
            value,
            file,
            _directory: directory,
        }
    }
}

/// Runs the bridge against `mock`'s endpoint with `extra` arguments and
/// `envs`, and checks that the token stayed out of its output.
fn publish(
    mock: &WhipMock,
    token: &Token,
    duration_s: u64,
    extra: &[&str],
    envs: &[(&str, &str)],
) -> BridgeRun {
    let endpoint = mock.endpoint().to_string();
    let duration = duration_s.to_string();
    let mut args = vec!["--device", "test", "--size", "320x240", "--output"];
    args.extend([endpoint.as_str(), "--token-file"]);
    args.push(token.file.to_str().unwrap());
    args.extend(["--duration", &duration]);
    args.extend(extra);
    let run = run_bridge(&args, envs, duration_s);
    run.assert_hides(&token.value, "session token");
    run
}

/// Returns the logged requests with `method` and a status that is not a
/// redirect.
fn final_requests(mock: &WhipMock, method: &str) -> Vec<Value> {
    mock.requests_with_method(method)
        .into_iter()
        .filter(|request| !matches!(request["status"].as_u64(), Some(301..=308)))
        .collect()
}

fn path_of(request: &Value) -> &str {
    request["path"].as_str().unwrap()
}

fn relay_candidates(request: &Value) -> u64 {
    request["relay_candidates"].as_u64().unwrap()
}

#[test]
fn clean_stop_deletes_resolved_resource() {
    let _guard = support::setup();
    let token = Token::mint();
    let mock = WhipMock::start_for_token("ok", &token.value);
    let expected_prefix = [
        ("ok", "/inputs/cam/whip/"),
        ("relative-location", "/inputs/cam/sessions/"),
        ("absolute-location", "/resources/"),
        ("dotdot-location", "/inputs/sessions/"),
    ];
    for (scenario, prefix) in expected_prefix {
        mock.set_scenario(scenario);
        let before = mock.requests().len();
        let run = publish(&mock, &token, 3, &[], &[]);
        let requests: Vec<Value> = mock.requests().split_off(before);
        assert_eq!(run.code, Some(0), "{scenario}: {}", run.stderr);

        let posts: Vec<&Value> = requests.iter().filter(|r| r["method"] == "POST").collect();
        assert_eq!(posts.len(), 1, "{scenario}: {requests:?}");
        let resource = posts[0]["resource"].as_str().unwrap();
        assert!(resource.starts_with(prefix), "{scenario}: {resource}");

        let deletes: Vec<&Value> = requests
            .iter()
            .filter(|r| r["method"] == "DELETE")
            .collect();
        assert_eq!(deletes.len(), 1, "{scenario}: {requests:?}");
        assert_eq!(path_of(deletes[0]), resource, "{scenario}");
        assert_eq!(deletes[0]["status"], 200, "{scenario}");
        assert_eq!(deletes[0]["auth"], "match", "{scenario}");
    }
}

#[test]
fn missing_location_warns_and_skips_delete() {
    let _guard = support::setup();
    let token = Token::mint();
    let mock = WhipMock::start_for_token("no-location", &token.value);
    let run = publish(&mock, &token, 3, &[], &[]);

    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(mock.requests_with_method("POST").len(), 1);
    assert!(mock.requests_with_method("DELETE").is_empty());
    assert!(run.stderr.contains("sent no Location"), "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot be ended cleanly"),
        "{}",
        run.stderr
    );
}

#[test]
fn redirect_repeats_post_and_deletes_there() {
    let _guard = support::setup();
    let token = Token::mint();
    let mock = WhipMock::start_for_token("ok", &token.value);
    for (scenario, status) in [("redirect-307", 307), ("redirect-308", 308)] {
        mock.set_scenario(scenario);
        let before = mock.requests().len();
        let run = publish(&mock, &token, 3, &[], &[]);
        let requests: Vec<Value> = mock.requests().split_off(before);
        assert_eq!(run.code, Some(0), "{scenario}: {}", run.stderr);

        let posts: Vec<&Value> = requests.iter().filter(|r| r["method"] == "POST").collect();
        assert_eq!(posts.len(), 2, "{scenario}: {requests:?}");
        assert_eq!(posts[0]["status"], status, "{scenario}");
        assert_eq!(path_of(posts[0]), ENDPOINT_PATH, "{scenario}");
        assert_eq!(posts[1]["status"], 201, "{scenario}");
        assert_eq!(
            path_of(posts[1]),
            format!("/moved{ENDPOINT_PATH}"),
            "{scenario}"
        );
        assert_eq!(
            posts[0]["body_sha256"], posts[1]["body_sha256"],
            "{scenario}: the repeated POST has another body"
        );
        assert!(posts[0]["body_length"].as_u64().unwrap() > 0, "{scenario}");

        // The answer's Location is root-relative, so the DELETE leaves the
        // /moved prefix and the mock redirects it there too.
        let resource = posts[1]["resource"].as_str().unwrap();
        let deletes: Vec<&Value> = requests
            .iter()
            .filter(|r| r["method"] == "DELETE" && r["status"] == 200)
            .collect();
        assert_eq!(deletes.len(), 1, "{scenario}: {requests:?}");
        assert_eq!(
            path_of(deletes[0]),
            format!("/moved{resource}"),
            "{scenario}"
        );
    }
}

#[test]
fn unauthorized_exits_3_after_two_rejections() {
    let _guard = support::setup();
    let token = Token::mint();
    let mock = WhipMock::start_for_token("unauthorized", &token.value);
    let run = publish(&mock, &token, 10, &[], &[]);

    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(
        run.stderr.contains("rejected the session token"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("401"), "{}", run.stderr);
    let rejected: Vec<Value> = mock
        .requests()
        .into_iter()
        .filter(|request| request["status"] == 401)
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(
        rejected.iter().all(|request| request["auth"] == "match"),
        "{rejected:?}"
    );
}

#[test]
fn rejected_offers_exit_2_with_server_text() {
    let _guard = support::setup();
    let token = Token::mint();
    let mock = WhipMock::start_for_token("ok", &token.value);
    let cases = [
        ("not-acceptable", "406", "H264 profile rejected"),
        ("bad-request", "400", "path 'inputs/cam' is not configured"),
    ];
    for (scenario, status, server_text) in cases {
        mock.set_scenario(scenario);
        let before = mock.requests_with_method("POST").len();
        let run = publish(&mock, &token, 10, &[], &[]);

        assert_eq!(run.code, Some(2), "{scenario}: {}", run.stderr);
        assert!(run.stderr.contains(status), "{scenario}: {}", run.stderr);
        assert!(
            run.stderr.contains(server_text),
            "{scenario}: {}",
            run.stderr
        );
        let posts = mock.requests_with_method("POST").len() - before;
        assert_eq!(posts, 1, "{scenario}: the offer was posted again");
    }
}

#[test]
fn stale_session_is_retried_then_streams() {
    let _guard = support::setup();
    let token = Token::mint();
    let mock = WhipMock::start_for_token("stale", &token.value);
    let run = publish(&mock, &token, 6, &[], &[]);

    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("409"), "{}", run.stderr);
    let posts = mock.requests_with_method("POST");
    let statuses: Vec<&Value> = posts.iter().map(|post| &post["status"]).collect();
    assert_eq!(statuses, [409, 201], "{posts:?}");
    let deletes = mock.requests_with_method("DELETE");
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(path_of(&deletes[0]), posts[1]["resource"].as_str().unwrap());
}

#[test]
fn ice_server_option_adds_relay_candidates() {
    let _guard = support::setup();
    let token = Token::mint();
    let turn = TurnServer::start();
    let mock = WhipMock::start_for_token("ok", &token.value);
    let url = turn.url();
    let extra = ["--ice-server", &url, "--turn-username", USER];
    let run = publish(
        &mock,
        &token,
        3,
        &extra,
        &[("TRAX_TURN_CREDENTIAL", PASSWORD)],
    );

    assert_eq!(run.code, Some(0), "{}", run.stderr);
    run.assert_hides(PASSWORD, "TURN password");
    let posts = final_requests(&mock, "POST");
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(relay_candidates(&posts[0]) > 0, "{posts:?}");
}

#[test]
fn options_link_adds_relay_candidates() {
    let _guard = support::setup();
    let token = Token::mint();
    let turn = TurnServer::start();
    let mock = WhipMock::start_for_token("ok", &token.value);
    let url = turn.url();
    let mock_turn = MockTurn {
        url: &url,
        username: USER,
        credential: PASSWORD,
    };
    mock.set_scenario_with_turn("options-ice", &mock_turn);
    let run = publish(&mock, &token, 3, &[], &[]);

    assert_eq!(run.code, Some(0), "{}", run.stderr);
    run.assert_hides(PASSWORD, "TURN password");
    let options = mock.requests_with_method("OPTIONS");
    assert_eq!(options.len(), 1, "{options:?}");
    let posts = final_requests(&mock, "POST");
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(relay_candidates(&posts[0]) > 0, "{posts:?}");
}

#[test]
fn answer_link_turn_offers_again_after_ice_fails() {
    let _guard = support::setup();
    let token = Token::mint();
    let turn = TurnServer::start();
    let mock = WhipMock::start_for_token("ok", &token.value);
    let url = turn.url();
    let mock_turn = MockTurn {
        url: &url,
        username: USER,
        credential: PASSWORD,
    };
    mock.set_scenario_with_turn("ok", &mock_turn);
    // ICE gives up 10 s after the first answer, and the second offer
    // follows.
    let run = publish(&mock, &token, 16, &[], &[]);

    assert_eq!(run.code, Some(0), "{}", run.stderr);
    run.assert_hides(PASSWORD, "TURN password");
    let posts = final_requests(&mock, "POST");
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(relay_candidates(&posts[0]), 0, "{posts:?}");
    assert!(relay_candidates(&posts[1]) > 0, "{posts:?}");

    let deletes = final_requests(&mock, "DELETE");
    let deleted: Vec<&str> = deletes.iter().map(path_of).collect();
    let created: Vec<&str> = posts
        .iter()
        .map(|post| post["resource"].as_str().unwrap())
        .collect();
    assert_eq!(deleted, created, "each session is deleted once, in order");
    let requests = mock.requests();
    let first_delete = requests
        .iter()
        .position(|request| request["method"] == "DELETE")
        .unwrap();
    let second_post = requests
        .iter()
        .rposition(|request| request["method"] == "POST")
        .unwrap();
    assert!(
        first_delete < second_post,
        "the first session was deleted only after the second offer: {requests:?}"
    );
}

#[test]
fn cross_origin_redirect_rejected_by_default() {
    let _guard = support::setup();
    let token = Token::mint();
    let mock = WhipMock::start_for_token("redirect-cross-origin", &token.value);
    let run = publish(&mock, &token, 10, &[], &[]);

    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(run.stderr.contains("another origin"), "{}", run.stderr);
    let second: Vec<Value> = mock
        .requests()
        .into_iter()
        .filter(|request| request["listener"] == "second")
        .collect();
    assert!(
        second.is_empty(),
        "the second origin was reached: {second:?}"
    );
}

#[test]
fn cross_origin_redirect_followed_when_allowed() {
    let _guard = support::setup();
    let token = Token::mint();
    let mock = WhipMock::start_for_token("redirect-cross-origin", &token.value);
    let run = publish(&mock, &token, 3, &["--whip-cross-origin"], &[]);

    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let posts = final_requests(&mock, "POST");
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0]["listener"], "second", "{posts:?}");
    assert_eq!(posts[0]["auth"], "match", "{posts:?}");
    let deletes = final_requests(&mock, "DELETE");
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0]["listener"], "second", "{deletes:?}");
    assert_eq!(path_of(&deletes[0]), posts[0]["resource"].as_str().unwrap());
}
