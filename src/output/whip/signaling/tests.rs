use super::*;

const ENDPOINT: &str = "https://edge.example:8889/inputs/cam/whip?region=eu";

fn exchange(headers: &[(&'static str, &str)], body: &str) -> Exchange {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    Exchange {
        request: "POST https://edge.example:8889/inputs/cam/whip".into(),
        url: Url::parse(ENDPOINT).unwrap(),
        status: StatusCode::CREATED,
        headers: map,
        body: body.as_bytes().to_vec(),
    }
}

fn config(endpoint: &str) -> SignalingConfig {
    SignalingConfig {
        endpoint: Url::parse(endpoint).unwrap(),
        ca_file: None,
        timeout: Duration::from_secs(5),
        allow_cross_origin: false,
    }
}

#[test]
fn resource_url_by_location_form() {
    let cases = [
        (
            "/inputs/cam/whip/abc",
            "https://edge.example:8889/inputs/cam/whip/abc",
        ),
        ("abc", "https://edge.example:8889/inputs/cam/abc"),
        ("whip/abc", "https://edge.example:8889/inputs/cam/whip/abc"),
        ("../x", "https://edge.example:8889/inputs/x"),
        (
            "https://other.example/sessions/abc?k=1",
            "https://other.example/sessions/abc?k=1",
        ),
        ("//cdn.example/s/1", "https://cdn.example/s/1"),
    ];
    for (location, expected) in cases {
        let resolved = resource_url(&exchange(&[("location", location)], ""));
        assert_eq!(
            resolved.as_ref().map(Url::as_str),
            Some(expected),
            "{location}"
        );
    }
}

#[test]
fn resource_url_none_without_http_location() {
    assert_eq!(resource_url(&exchange(&[], "")), None);
    assert_eq!(
        resource_url(&exchange(&[("location", "urn:uuid:1234")], "")),
        None
    );
}

#[test]
fn answer_sdp_checks_type_and_body() {
    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n";
    let good = [
        "application/sdp",
        "Application/SDP",
        "application/sdp; charset=utf-8",
    ];
    for content_type in good {
        let answer = answer_sdp(&exchange(&[("content-type", content_type)], sdp));
        assert_eq!(answer.as_deref(), Ok(sdp), "{content_type}");
    }

    let bad = [
        (Some("text/html"), sdp, "Content-Type is 'text/html'"),
        (None, sdp, "Content-Type is none"),
        (Some("application/sdp"), "", "body is empty"),
        (Some("application/sdp"), " \r\n", "body is empty"),
        (
            Some("application/sdp"),
            "<html>",
            "does not start with 'v=0'",
        ),
    ];
    for (content_type, body, expected) in bad {
        let headers: Vec<_> = content_type
            .map(|value| ("content-type", value))
            .into_iter()
            .collect();
        let error = answer_sdp(&exchange(&headers, body)).unwrap_err();
        assert!(
            error.contains(expected),
            "{content_type:?} {body:?}: {error}"
        );
    }
}

#[test]
fn without_query_drops_secrets() {
    let url = Url::parse("https://user:pw@edge.example/whip?token=abc#frag").unwrap();
    assert_eq!(without_query(&url), "https://edge.example/whip");
}

#[test]
fn describe_request_names_redirect() {
    let first = Url::parse("http://127.0.0.1:1/whip?x=1").unwrap();
    let moved = Url::parse("http://127.0.0.1:1/moved/whip").unwrap();
    assert_eq!(
        describe_request(&Method::POST, &first, &first),
        "POST http://127.0.0.1:1/whip"
    );
    assert_eq!(
        describe_request(&Method::POST, &first, &moved),
        "POST http://127.0.0.1:1/whip (redirected to http://127.0.0.1:1/moved/whip)"
    );
}

#[test]
fn loopback_hosts() {
    let cases = [
        ("http://127.0.0.1/", true),
        ("http://127.1.2.3/", true),
        ("http://[::1]/", true),
        ("http://localhost:8889/", true),
        ("http://LOCALHOST/", true),
        ("http://192.0.2.1/", false),
        ("http://edge.example/", false),
        ("http://localhost.example/", false),
    ];
    for (url, expected) in cases {
        assert_eq!(is_loopback(&Url::parse(url).unwrap()), expected, "{url}");
    }
}

#[test]
fn endpoint_checks() {
    let cases = [
        ("ftp://edge.example/whip", "scheme must be"),
        ("https://user:pw@edge.example/whip", "carries credentials"),
        ("https://user@edge.example/whip", "carries credentials"),
    ];
    for (endpoint, expected) in cases {
        let error = WhipClient::new(config(endpoint)).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(expected), "{endpoint}: {message}");
        assert!(!message.contains("pw"), "{endpoint}: {message}");
    }
    assert!(WhipClient::new(config(ENDPOINT)).is_ok());
}

#[test]
fn bearer_is_sensitive() {
    let value = bearer(&Secret::new("session token", "abc.def.ghi")).unwrap();
    assert!(value.is_sensitive());
    assert_eq!(value.to_str().unwrap(), "Bearer abc.def.ghi");

    let error = bearer(&Secret::new("session token", "abc\ndef")).unwrap_err();
    assert!(!error.to_string().contains("abc"), "{error}");
}

#[test]
fn client_debug_hides_query() {
    let client = WhipClient::new(config(ENDPOINT)).unwrap();
    let text = format!("{client:?}");
    assert!(
        text.contains("https://edge.example:8889/inputs/cam/whip"),
        "{text}"
    );
    assert!(!text.contains("region"), "{text}");
}

#[test]
fn status_error_redacts_token() {
    let token = Secret::new("session token", "tok-123456");
    let mut reply = exchange(&[], "  bad token\u{7}\n tok-123456 for\tpath  ");
    reply.status = StatusCode::BAD_REQUEST;
    let message = status_error(reply, &token).to_string();
    assert!(
        message.contains("(server: \"bad token <redacted> for path\")"),
        "{message}"
    );
}

#[test]
fn status_error_caps_body() {
    let token = Secret::new("session token", "t");
    let mut reply = exchange(&[], &"x".repeat(5000));
    reply.status = StatusCode::NOT_ACCEPTABLE;
    let message = status_error(reply, &token).to_string();
    assert!(
        message.contains(&format!("{}…", "x".repeat(300))),
        "{message}"
    );
    assert!(!message.contains(&"x".repeat(301)), "{message}");
}

#[test]
fn clear_text_warned_once() {
    let client = WhipClient::new(config("http://edge.example/inputs/cam/whip")).unwrap();
    let remote = Url::parse("http://edge.example/inputs/cam/whip?token=abc").unwrap();
    let logs = crate::telemetry::capture_logs(|| {
        client.warn_if_clear_text(&remote);
        client.warn_if_clear_text(&remote);
    });
    assert_eq!(logs.matches("travels in clear text").count(), 1, "{logs}");
    assert!(
        logs.contains("http://edge.example/inputs/cam/whip"),
        "{logs}"
    );
    assert!(!logs.contains("token=abc"), "{logs}");
}

#[test]
fn clear_text_silent_on_loopback() {
    let client = WhipClient::new(config("http://127.0.0.1:8889/whip")).unwrap();
    let https = WhipClient::new(config(ENDPOINT)).unwrap();
    let logs = crate::telemetry::capture_logs(|| {
        client.warn_if_clear_text(&Url::parse("http://127.0.0.1:8889/whip").unwrap());
        client.warn_if_clear_text(&Url::parse("http://[::1]:8889/whip").unwrap());
        https.warn_if_clear_text(&Url::parse(ENDPOINT).unwrap());
    });
    assert!(logs.is_empty(), "{logs}");
}

#[test]
fn client_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<WhipClient>();
    assert_send_sync::<Answer>();
}
