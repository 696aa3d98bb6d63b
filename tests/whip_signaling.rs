//! The WHIP signaling client against `tests/peers/whip_mock.py` on
//! 127.0.0.1: each Location form, 307 and 308 redirects, cross-origin
//! redirects, Link header forms, OPTIONS, every error status and its
//! output error, DELETE, and HTTPS with and without the CA file.

mod support;

use bridge::config::Secret;
use bridge::exit::ExitStatus;
use bridge::output::whip::link::IceServer;
use bridge::output::whip::signaling::{
    Answer, SignalingConfig, SignalingError, WhipClient, MAX_REDIRECTS,
};
use bridge::output::OutputError;
use gstreamer_sdp::SDPMessage;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;
use support::whip_mock::{TlsFiles, WhipMock, ENDPOINT_PATH};
use url::Url;

/// A minimal offer as a WHIP client sends it: H.264 video and Opus audio,
/// bundled, send-only, no candidates.
const OFFER: &str = "v=0\r\n\
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE video0 audio1\r\n\
a=ice-options:trickle\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n\
c=IN IP4 0.0.0.0\r\n\
a=setup:actpass\r\n\
a=ice-ufrag:Kq7f\r\n\
a=ice-pwd:JmX1Wz0cXqN4Yb8tLr2Ds5vH\r\n\
a=fingerprint:sha-256 0F:74:31:25:CB:A2:13:EC:28:6F:6D:2C:61:FF:5D:C2:BC:B9:DB:3D:98:14:8D:1A:BB:EA:33:0C:A4:60:A8:8E\r\n\
a=mid:video0\r\n\
a=sendonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1;profile-level-id=42e01f;level-asymmetry-allowed=1\r\n\
a=rtcp-fb:96 nack pli\r\n\
a=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
c=IN IP4 0.0.0.0\r\n\
a=setup:actpass\r\n\
a=ice-ufrag:Kq7f\r\n\
a=ice-pwd:JmX1Wz0cXqN4Yb8tLr2Ds5vH\r\n\
a=fingerprint:sha-256 0F:74:31:25:CB:A2:13:EC:28:6F:6D:2C:61:FF:5D:C2:BC:B9:DB:3D:98:14:8D:1A:BB:EA:33:0C:A4:60:A8:8E\r\n\
a=mid:audio1\r\n\
a=sendonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:111 OPUS/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n";

fn config(endpoint: Url) -> SignalingConfig {
    SignalingConfig {
        endpoint,
        ca_file: None,
        timeout: Duration::from_secs(5),
        allow_cross_origin: false,
    }
}

fn client(mock: &WhipMock) -> WhipClient {
    WhipClient::new(config(mock.endpoint())).unwrap()
}

fn token(mock: &WhipMock) -> Secret {
    Secret::new("session token", mock.token.clone())
}

fn publish(mock: &WhipMock) -> Answer {
    client(mock)
        .publish(&token(mock), OFFER)
        .unwrap_or_else(|error| panic!("publish failed: {error}; mock: {}", mock.stderr()))
}

fn publish_error(mock: &WhipMock) -> SignalingError {
    match client(mock).publish(&token(mock), OFFER) {
        Ok(answer) => panic!("publish succeeded: {answer:?}"),
        Err(error) => error,
    }
}

/// Returns the URL of the session resource the mock created for its last
/// 201.
fn logged_resource(mock: &WhipMock, origin: &str) -> Url {
    let created = mock
        .requests()
        .into_iter()
        .rfind(|request| request["status"] == 201)
        .expect("the mock logged a 201");
    let path = created["resource"]
        .as_str()
        .expect("the 201 has a resource");
    Url::parse(&format!("{origin}{path}")).unwrap()
}

fn statuses(requests: &[Value]) -> Vec<u64> {
    requests
        .iter()
        .map(|request| request["status"].as_u64().unwrap())
        .collect()
}

fn assert_no_token(text: &str, mock: &WhipMock) {
    assert!(!text.contains(&mock.token), "the token shows in: {text}");
}

fn stun(url: &str) -> IceServer {
    IceServer::parse(url, None, None).unwrap()
}

fn turn(url: &str, username: &str, credential: &str) -> IceServer {
    let credential = Secret::new("TURN credential", credential);
    IceServer::parse(url, Some(username.into()), Some(credential)).unwrap()
}

#[test]
fn publish_ok_returns_answer() {
    let mock = WhipMock::start("ok");
    let answer = publish(&mock);

    let expected = logged_resource(&mock, &mock.origin);
    assert_eq!(answer.resource.as_ref(), Some(&expected));
    let path = expected.path();
    assert!(path.starts_with(&format!("{ENDPOINT_PATH}/")), "{path}");
    assert!(answer
        .etag
        .as_deref()
        .is_some_and(|etag| etag.starts_with('"')));
    assert_eq!(
        answer.ice_servers,
        vec![
            stun("stun:127.0.0.1:3478"),
            turn(
                "turn:127.0.0.1:3478?transport=udp",
                "mock-user",
                "mock-pass"
            ),
        ]
    );
    assert!(answer.sdp.starts_with("v=0\r\n"), "{}", answer.sdp);
}

#[test]
fn publish_sends_offer_headers() {
    let mock = WhipMock::start("ok");
    publish(&mock);

    let posts = mock.requests_with_method("POST");
    assert_eq!(posts.len(), 1, "{posts:?}");
    let post = &posts[0];
    assert_eq!(post["path"], ENDPOINT_PATH);
    assert_eq!(post["auth"], "match");
    assert_eq!(post["headers"]["content-type"], "application/sdp");
    assert_eq!(post["headers"]["accept"], "application/sdp");
    assert_eq!(post["body_length"], OFFER.len() as u64);
    assert_eq!(post["candidates"], 0);
    assert!(post["headers"].get("authorization").is_none(), "{post}");
}

#[test]
fn mock_counts_offer_candidates() {
    let mock = WhipMock::start("ok");
    let offer = format!(
        "{OFFER}a=candidate:1 1 UDP 2122260223 127.0.0.1 50000 typ host\r\n\
         a=candidate:2 1 UDP 41885439 127.0.0.1 50002 typ relay raddr 0.0.0.0 rport 0\r\n"
    );
    client(&mock).publish(&token(&mock), &offer).unwrap();

    let posts = mock.requests_with_method("POST");
    assert_eq!(posts[0]["candidates"], 2);
    assert_eq!(posts[0]["relay_candidates"], 1);
}

#[test]
fn answer_sdp_mirrors_offer() {
    let _guard = support::setup();
    let mock = WhipMock::start("ok");
    let answer = publish(&mock);

    let sdp = SDPMessage::parse_buffer(answer.sdp.as_bytes())
        .unwrap_or_else(|error| panic!("invalid SDP answer ({error}): {}", answer.sdp));
    assert_eq!(sdp.medias_len(), 2);
    let expected = [
        ("video", "video0", vec!["96", "97"]),
        ("audio", "audio1", vec!["111"]),
    ];
    for (index, (kind, mid, formats)) in expected.iter().enumerate() {
        let media = sdp.media(index as u32).unwrap();
        assert_eq!(media.media(), Some(*kind));
        assert_eq!(media.attribute_val("mid"), Some(*mid));
        let answer_formats: Vec<&str> = media.formats().collect();
        assert_eq!(&answer_formats, formats);
        assert_eq!(media.attribute_val("setup"), Some("active"));
        assert!(media.attribute_val("ice-ufrag").is_some());
        assert_ne!(media.attribute_val("ice-ufrag"), Some("Kq7f"));
        assert!(media.attribute_val("ice-pwd").is_some());
        let fingerprint = media.attribute_val("fingerprint").unwrap();
        assert!(fingerprint.starts_with("sha-256 "), "{fingerprint}");
        assert!(media.attribute_val("rtcp-mux").is_some());
        assert!(media.attribute_val("recvonly").is_some());
        assert!(media.attribute_val("candidate").is_none());
    }
    assert_eq!(
        sdp.attribute_val("group"),
        Some("BUNDLE video0 audio1"),
        "{}",
        answer.sdp
    );
}

#[test]
fn location_forms_resolve() {
    let cases = [
        ("relative-location", "/inputs/cam/sessions/"),
        ("dotdot-location", "/inputs/sessions/"),
        ("absolute-location", "/resources/"),
    ];
    for (scenario, prefix) in cases {
        let mock = WhipMock::start(scenario);
        let answer = publish(&mock);
        let resource = answer.resource.expect(scenario);

        assert_eq!(resource, logged_resource(&mock, &mock.origin), "{scenario}");
        assert!(
            resource.path().starts_with(prefix),
            "{scenario}: {resource}"
        );
        assert_eq!(resource.origin(), mock.endpoint().origin(), "{scenario}");
    }
}

#[test]
fn no_location_gives_none() {
    let mock = WhipMock::start("no-location");
    let answer = publish(&mock);
    assert_eq!(answer.resource, None);
    assert!(!answer.sdp.is_empty());
}

#[test]
fn delete_ends_session_once() {
    let mock = WhipMock::start("ok");
    let client = client(&mock);
    let answer = client.publish(&token(&mock), OFFER).unwrap();
    let resource = answer.resource.unwrap();

    client.delete(&token(&mock), &resource).unwrap();

    let deletes = mock.requests_with_method("DELETE");
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0]["path"], resource.path());
    assert_eq!(deletes[0]["status"], 200);
    assert_eq!(deletes[0]["auth"], "match");
}

#[test]
fn delete_unknown_resource_is_done() {
    let mock = WhipMock::start("ok");
    let resource = mock.endpoint().join("whip/no-such-session").unwrap();
    client(&mock).delete(&token(&mock), &resource).unwrap();

    let deletes = mock.requests_with_method("DELETE");
    assert_eq!(statuses(&deletes), vec![404]);
}

#[test]
fn redirects_keep_method_and_body() {
    for (scenario, status) in [("redirect-307", 307), ("redirect-308", 308)] {
        let mock = WhipMock::start(scenario);
        let answer = publish(&mock);

        let posts = mock.requests_with_method("POST");
        assert_eq!(statuses(&posts), vec![status, 201], "{scenario}");
        assert_eq!(posts[0]["path"], ENDPOINT_PATH);
        assert_eq!(posts[1]["path"], format!("/moved{ENDPOINT_PATH}"));
        assert_eq!(
            posts[1]["body_sha256"], posts[0]["body_sha256"],
            "{scenario}"
        );
        assert_eq!(posts[1]["body_length"], OFFER.len() as u64, "{scenario}");
        assert_eq!(posts[1]["auth"], "match", "{scenario}");
        assert_eq!(posts[1]["headers"]["content-type"], "application/sdp");
        assert_eq!(
            answer.resource,
            Some(logged_resource(&mock, &mock.origin)),
            "{scenario}"
        );
    }
}

#[test]
fn redirects_followed_for_options_delete() {
    let mock = WhipMock::start("redirect-307");
    let client = client(&mock);
    let answer = client.publish(&token(&mock), OFFER).unwrap();
    client
        .delete(&token(&mock), &answer.resource.unwrap())
        .unwrap();
    client.ice_servers(&token(&mock)).unwrap();

    let deletes = mock.requests_with_method("DELETE");
    assert_eq!(statuses(&deletes), vec![307, 200]);
    assert!(deletes[1]["path"].as_str().unwrap().starts_with("/moved/"));
    let options = mock.requests_with_method("OPTIONS");
    assert_eq!(statuses(&options), vec![307, 204]);
    assert_eq!(options[1]["auth"], "match");
}

#[test]
fn redirect_301_is_error() {
    let mock = WhipMock::start("redirect-301");
    let error = publish_error(&mock);
    let message = error.to_string();
    assert!(
        matches!(error, SignalingError::Redirect { .. }),
        "{error:?}"
    );
    assert!(message.contains("301 Moved Permanently"), "{message}");
    assert!(message.contains("drops the request body"), "{message}");

    let output: OutputError = error.into();
    assert!(
        matches!(
            output,
            OutputError::Fatal {
                status: ExitStatus::Usage,
                ..
            }
        ),
        "{output:?}"
    );
    assert_eq!(mock.requests_with_method("POST").len(), 1);
}

#[test]
fn redirect_loop_stops() {
    let mock = WhipMock::start("redirect-loop");
    let message = publish_error(&mock).to_string();
    assert!(
        message.contains(&format!("more than {MAX_REDIRECTS} redirects")),
        "{message}"
    );
    assert_eq!(mock.requests().len(), MAX_REDIRECTS + 1);
}

#[test]
fn cross_origin_redirect_refused() {
    let mock = WhipMock::start("redirect-cross-origin");
    let error = publish_error(&mock);
    let message = error.to_string();

    assert!(
        matches!(error, SignalingError::CrossOrigin { .. }),
        "{error:?}"
    );
    assert!(message.contains(&mock.second_origin), "{message}");
    assert!(message.contains("token was not sent"), "{message}");
    assert!(message.contains("307"), "{message}");
    assert_no_token(&message, &mock);
    assert_no_token(&format!("{error:?}"), &mock);

    let second: Vec<Value> = mock
        .requests()
        .into_iter()
        .filter(|request| request["listener"] == "second")
        .collect();
    assert!(second.is_empty(), "the other origin got {second:?}");
    let output: OutputError = error.into();
    assert!(
        matches!(
            output,
            OutputError::Fatal {
                status: ExitStatus::Usage,
                ..
            }
        ),
        "{output:?}"
    );
}

#[test]
fn cross_origin_redirect_allowed() {
    let mock = WhipMock::start("redirect-cross-origin");
    let mut settings = config(mock.endpoint());
    settings.allow_cross_origin = true;
    let client = WhipClient::new(settings).unwrap();

    let answer = client.publish(&token(&mock), OFFER).unwrap();
    let resource = answer.resource.unwrap();
    assert_eq!(resource, logged_resource(&mock, &mock.second_origin));
    client.delete(&token(&mock), &resource).unwrap();

    let requests = mock.requests();
    let listeners: Vec<(&str, &str, u64)> = requests
        .iter()
        .map(|request| {
            (
                request["listener"].as_str().unwrap(),
                request["method"].as_str().unwrap(),
                request["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listeners,
        vec![
            ("main", "POST", 307),
            ("second", "POST", 201),
            ("second", "DELETE", 200)
        ]
    );
    assert_eq!(requests[1]["auth"], "match");
    assert_eq!(requests[1]["port"], mock.second_port);
    assert_eq!(requests[1]["body_sha256"], requests[0]["body_sha256"]);
}

#[test]
fn link_forms_parsed() {
    let mock = WhipMock::start("link-forms");
    let answer = publish(&mock);
    assert_eq!(
        answer.ice_servers,
        vec![
            stun("stun:stun1.example.net:3478"),
            stun("stun:stun2.example.net"),
            turn(
                "turn:turn.example.net:3478?transport=udp",
                "plain",
                "unquoted/value+1="
            ),
            turn(
                "turn:turn.example.net?transport=tcp",
                "user;one,two",
                "pass,with;separators \"quoted\""
            ),
            turn("turns:turn.example.net:443?transport=tcp", "u", "c"),
            stun("stun:[2001:db8::1]:3478"),
        ]
    );
}

#[test]
fn options_returns_ice_servers() {
    let mock = WhipMock::start("options-ice");
    let client = client(&mock);
    let servers = client.ice_servers(&token(&mock)).unwrap();
    assert_eq!(
        servers,
        vec![
            stun("stun:127.0.0.1:3478"),
            turn(
                "turn:127.0.0.1:3478?transport=udp",
                "mock-user",
                "mock-pass"
            ),
        ]
    );
    let options = mock.requests_with_method("OPTIONS");
    assert_eq!(statuses(&options), vec![204]);
    assert_eq!(options[0]["auth"], "match");

    let answer = client.publish(&token(&mock), OFFER).unwrap();
    assert!(answer.ice_servers.is_empty(), "{:?}", answer.ice_servers);
}

#[test]
fn options_without_links_empty() {
    for (scenario, status) in [("ok", 204), ("no-options", 405)] {
        let mock = WhipMock::start(scenario);
        let servers = client(&mock).ice_servers(&token(&mock)).unwrap();
        assert!(servers.is_empty(), "{scenario}: {servers:?}");
        let options = mock.requests_with_method("OPTIONS");
        assert_eq!(statuses(&options), vec![status], "{scenario}");
    }
}

#[test]
fn options_bad_request_means_no_servers() {
    // Some WHIP servers reject OPTIONS as a bad request; the POST decides.
    let mock = WhipMock::start("options-bad-request");
    let servers = client(&mock).ice_servers(&token(&mock)).unwrap();
    assert!(servers.is_empty(), "{servers:?}");
    let options = mock.requests_with_method("OPTIONS");
    assert_eq!(statuses(&options), vec![400]);
}

#[test]
fn unauthorized_is_rejected() {
    let mock = WhipMock::start("unauthorized");
    let error = publish_error(&mock);
    assert_no_token(&format!("{error:?}"), &mock);

    let output: OutputError = error.into();
    let OutputError::Rejected(message) = &output else {
        panic!("expected Rejected: {output:?}");
    };
    assert!(message.contains("401 Unauthorized"), "{message}");
    assert!(message.contains("talk token for this path"), "{message}");
    assert!(message.contains(mock.endpoint().as_str()), "{message}");
    assert!(message.contains("invalid token '<redacted>'"), "{message}");
    assert_no_token(message, &mock);

    let options = client(&mock).ice_servers(&token(&mock)).unwrap_err();
    assert!(
        matches!(options, SignalingError::Unauthorized { .. }),
        "{options:?}"
    );
}

#[test]
fn wrong_token_is_rejected() {
    let mock = WhipMock::start("ok");
    let wrong = Secret::new("session token", "not-the-token");
    let error = client(&mock).publish(&wrong, OFFER).unwrap_err();
    assert!(
        matches!(error, SignalingError::Unauthorized { .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("not-the-token"), "{error}");
    assert_eq!(mock.requests()[0]["auth"], "mismatch");
}

#[test]
fn rejections_quote_server_text() {
    let cases = [
        (
            "not-acceptable",
            "406 Not Acceptable",
            "codecs not supported by path 'inputs/cam': H264 profile rejected",
            "tracks or codecs",
        ),
        (
            "bad-request",
            "400 Bad Request",
            "path 'inputs/cam' is not configured",
            "not configured on the server",
        ),
    ];
    for (scenario, status, body, hint) in cases {
        let mock = WhipMock::start(scenario);
        let output: OutputError = publish_error(&mock).into();
        let OutputError::Fatal {
            status: ExitStatus::Usage,
            message,
        } = &output
        else {
            panic!("{scenario}: expected Fatal Usage: {output:?}");
        };
        assert!(message.contains(status), "{message}");
        assert!(
            message.contains(&format!("(server: \"{body}\")")),
            "{message}"
        );
        assert!(message.contains(hint), "{message}");
        assert!(
            message.contains(&format!("POST {}", mock.endpoint())),
            "{message}"
        );
    }
}

#[test]
fn stale_session_is_transient() {
    let mock = WhipMock::start("stale");
    let output: OutputError = publish_error(&mock).into();
    let OutputError::Transient(message) = &output else {
        panic!("expected Transient: {output:?}");
    };
    assert!(message.contains("409 Conflict"), "{message}");
    assert!(message.contains("already publishing"), "{message}");

    let answer = publish(&mock);
    assert!(answer.resource.is_some());
    assert_eq!(statuses(&mock.requests_with_method("POST")), vec![409, 201]);
}

#[test]
fn busy_server_is_transient() {
    let mock = WhipMock::start("busy");
    let output: OutputError = publish_error(&mock).into();
    assert!(
        matches!(&output, OutputError::Transient(message) if message.contains("503")),
        "{output:?}"
    );
}

#[test]
fn bad_answers_are_protocol_errors() {
    let cases = [
        ("html-answer", "Content-Type is 'text/html'"),
        ("empty-answer", "the body is empty"),
    ];
    for (scenario, expected) in cases {
        let mock = WhipMock::start(scenario);
        let error = publish_error(&mock);
        let message = error.to_string();
        assert!(
            matches!(error, SignalingError::Protocol { .. }),
            "{error:?}"
        );
        assert!(message.contains(expected), "{scenario}: {message}");
        assert!(message.contains("201 Created"), "{scenario}: {message}");
    }
}

#[test]
fn control_switches_scenario() {
    let mock = WhipMock::start("ok");
    mock.set_scenario("not-acceptable");
    let error = publish_error(&mock);
    assert!(error.to_string().contains("406"), "{error}");

    mock.set_scenario("ok");
    publish(&mock);
    assert_eq!(statuses(&mock.requests_with_method("POST")), vec![406, 201]);
}

#[test]
fn connection_refused_is_transient() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let endpoint = Url::parse(&format!("http://127.0.0.1:{port}{ENDPOINT_PATH}")).unwrap();
    let client = WhipClient::new(config(endpoint)).unwrap();
    let error = client
        .publish(&Secret::new("session token", "t"), OFFER)
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, SignalingError::Network { .. }), "{error:?}");
    assert!(message.contains("no response"), "{message}");
    assert!(matches!(
        OutputError::from(error),
        OutputError::Transient(_)
    ));
}

#[test]
fn silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let endpoint = Url::parse(&format!("http://127.0.0.1:{port}{ENDPOINT_PATH}")).unwrap();
    let mut settings = config(endpoint);
    settings.timeout = Duration::from_millis(300);
    let client = WhipClient::new(settings).unwrap();

    let error = client
        .publish(&Secret::new("session token", "t"), OFFER)
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            SignalingError::Network {
                timed_out: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(message.contains("timed out after 300 ms"), "{message}");
    assert!(matches!(
        OutputError::from(error),
        OutputError::Transient(_)
    ));
    drop(listener);
}

#[test]
fn stalled_body_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request);
        let head = "HTTP/1.1 201 Created\r\nContent-Type: application/sdp\r\n\
                    Content-Length: 100\r\n\r\nv=0\r\n";
        stream.write_all(head.as_bytes()).unwrap();
        std::thread::sleep(Duration::from_secs(3));
    });
    let endpoint = Url::parse(&format!("http://127.0.0.1:{port}{ENDPOINT_PATH}")).unwrap();
    let mut settings = config(endpoint);
    settings.timeout = Duration::from_millis(500);
    let client = WhipClient::new(settings).unwrap();

    let error = client
        .publish(&Secret::new("session token", "t"), OFFER)
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            SignalingError::Network {
                timed_out: true,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        message.contains("201 Created, then reading the body timed out after 500 ms"),
        "{message}"
    );
}

#[test]
fn secrets_stay_out_of_logs() {
    let _guard = support::setup();
    let mock = WhipMock::start("ok");
    let client = client(&mock);
    let answer = client.publish(&token(&mock), OFFER).unwrap();
    client
        .delete(&token(&mock), answer.resource.as_ref().unwrap())
        .unwrap();
    mock.set_scenario("unauthorized");
    let error = client.publish(&token(&mock), OFFER).unwrap_err();

    let printed = format!("{client:?} {answer:?} {error} {error:?}");
    assert_no_token(&printed, &mock);
    assert!(!printed.contains("mock-pass"), "{printed}");
    let logs = support::captured_logs();
    assert_no_token(&logs, &mock);
    assert!(!logs.contains("mock-pass"), "{logs}");
    assert!(logs.contains("WHIP session created"), "{logs}");
}

/// A CA, and a certificate for 127.0.0.1 it signed, written as PEM files.
struct TlsDirectory {
    directory: tempfile::TempDir,
}

impl TlsDirectory {
    fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();

        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(directory.path().join("server.pem"), server.pem()).unwrap();
        std::fs::write(
            directory.path().join("server-key.pem"),
            server_key.serialize_pem(),
        )
        .unwrap();
        Self { directory }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    fn start_mock(&self) -> WhipMock {
        let cert = self.path("server.pem");
        let key = self.path("server-key.pem");
        WhipMock::start_with(
            "ok",
            Some(TlsFiles {
                cert: &cert,
                key: &key,
            }),
        )
    }
}

#[test]
fn https_with_ca_file() {
    let tls = TlsDirectory::new();
    let mock = tls.start_mock();
    assert!(mock.origin.starts_with("https://"), "{}", mock.origin);

    let mut settings = config(mock.endpoint());
    settings.ca_file = Some(tls.path("ca.pem"));
    let client = WhipClient::new(settings).unwrap();
    let answer = client.publish(&token(&mock), OFFER).unwrap();
    let resource = answer.resource.unwrap();
    assert_eq!(resource.scheme(), "https");
    client.delete(&token(&mock), &resource).unwrap();
    assert_eq!(statuses(&mock.requests()), vec![201, 200]);
}

#[test]
fn https_without_ca_rejected() {
    let tls = TlsDirectory::new();
    let mock = tls.start_mock();

    let error = client(&mock).publish(&token(&mock), OFFER).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, SignalingError::Tls { .. }), "{error:?}");
    assert!(message.contains("not trusted"), "{message}");
    assert!(mock.requests().is_empty(), "{:?}", mock.requests());
    assert!(
        matches!(
            OutputError::from(error),
            OutputError::Fatal {
                status: ExitStatus::Other,
                ..
            }
        ),
        "TLS errors are not retried"
    );
}

#[test]
fn ca_file_errors_name_path() {
    let directory = tempfile::tempdir().unwrap();
    let missing = directory.path().join("missing.pem");
    let not_pem = directory.path().join("not.pem");
    std::fs::write(&not_pem, "just text\n").unwrap();

    for (path, expected) in [(missing, "check the path"), (not_pem, "BEGIN CERTIFICATE")] {
        let mut settings = config(Url::parse("https://127.0.0.1:9/whip").unwrap());
        settings.ca_file = Some(path.clone());
        let error = WhipClient::new(settings).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(expected), "{message}");
    }
}
