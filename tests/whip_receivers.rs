//! The two WHIP receivers the WHIP output is tested against, without the
//! bridge: the aiortc peer and the webrtcbin receiver must reject the same
//! invalid requests with the same status codes.

mod support;

use reqwest::blocking::Client;
use support::standin::Standin;
use support::whip_bridge::standin_talk_credentials;
use support::whip_receiver::{AiortcReceiver, AiortcToken};
use support::whip_token::{TokenPolicy, WHIP_AUDIENCE};
use support::whip_webrtcbin::{WebrtcbinOptions, WebrtcbinReceiver};

const TWO_VIDEO_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 97\r\na=rtpmap:97 H264/90000\r\n";
const DATA_CHANNEL_OFFER: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
    m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n\
    m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";

fn post(url: &str, token: &str, content_type: &str, body: &str) -> (u16, String) {
    let response = Client::new()
        .post(url)
        .bearer_auth(token)
        .header("Content-Type", content_type)
        .body(body.to_string())
        .send()
        .unwrap_or_else(|error| panic!("POST {url} failed: {error}"));
    (response.status().as_u16(), response.text().unwrap())
}

/// Sends every request a receiver must reject to the endpoint of `path`
/// at `origin`, and checks each status.
fn check_rejections(name: &str, origin: &str, path: &str, token: &str) {
    let url = format!("{origin}/{path}/whip");

    let (status, body) = post(&url, "not.a.token", "application/sdp", TWO_VIDEO_OFFER);
    assert_eq!(status, 401, "{name}: invalid token: {body}");

    let other_url = format!("{origin}/inputs/whip-other/whip");
    let (status, body) = post(&other_url, token, "application/sdp", TWO_VIDEO_OFFER);
    assert_eq!(status, 401, "{name}: token for another path: {body}");
    assert!(
        body.contains("path"),
        "{name}: 401 body names the path claim: {body}"
    );

    let (status, body) = post(&url, token, "application/sdp", TWO_VIDEO_OFFER);
    assert_eq!(status, 406, "{name}: two video m-lines: {body}");

    let (status, body) = post(&url, token, "application/sdp", DATA_CHANNEL_OFFER);
    assert_eq!(status, 406, "{name}: data channel: {body}");

    let (status, body) = post(&url, token, "text/plain", TWO_VIDEO_OFFER);
    assert_eq!(status, 415, "{name}: text/plain body: {body}");

    let (status, body) = post(&format!("{origin}/whip"), token, "application/sdp", "v=0");
    assert_eq!(status, 404, "{name}: no path: {body}");

    let empty_segment = format!("{origin}/inputs//whip");
    let (status, body) = post(&empty_segment, token, "application/sdp", "v=0");
    assert_eq!(status, 404, "{name}: empty path segment: {body}");

    let unknown = format!("{url}/0123456789abcdef0123456789abcdef");
    let response = Client::new()
        .delete(&unknown)
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        404,
        "{name}: DELETE of an unknown session"
    );
}

#[test]
fn receivers_reject_invalid_requests() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    let (path, token) = standin_talk_credentials(&standin);
    let directory = tempfile::tempdir().unwrap();

    let aiortc = AiortcReceiver::start(
        &directory.path().join("aiortc"),
        AiortcToken::Jwks(&standin.jwks_url()),
        &[],
    );
    let webrtcbin = WebrtcbinReceiver::start(WebrtcbinOptions {
        record_dir: directory.path().join("webrtcbin"),
        token: TokenPolicy::Jwks {
            url: standin.jwks_url(),
            audience: WHIP_AUDIENCE.to_string(),
        },
    })
    .expect("the webrtcbin receiver starts");

    let aiortc_origin = format!("http://127.0.0.1:{}", aiortc.port);
    let webrtcbin_origin = format!("http://127.0.0.1:{}", webrtcbin.port);
    check_rejections("aiortc", &aiortc_origin, &path, &token);
    check_rejections("webrtcbin", &webrtcbin_origin, &path, &token);

    assert!(
        !aiortc.log().contains(&token),
        "the aiortc receiver logged the token"
    );
    assert!(
        !support::captured_logs().contains(&token),
        "the webrtcbin receiver logged the token"
    );
    assert_eq!(
        webrtcbin.session_count(),
        0,
        "webrtcbin: no session was created"
    );
    assert!(
        aiortc
            .events()
            .iter()
            .all(|event| event["event"] != "session"),
        "aiortc: no session was created"
    );
    aiortc.stop();
}
