use super::*;

fn secret(value: &str) -> Secret {
    Secret::new("TURN credential", value)
}

fn turn(url: &str, username: &str, credential: &str) -> IceServer {
    IceServer {
        url: url.to_string(),
        username: Some(username.to_string()),
        credential: Some(secret(credential)),
    }
}

fn stun(url: &str) -> IceServer {
    IceServer {
        url: url.to_string(),
        username: None,
        credential: None,
    }
}

#[test]
fn uri_parts_by_form() {
    let cases = [
        (
            "stun:stun.example.net",
            Scheme::Stun,
            "stun.example.net",
            3478,
            None,
        ),
        (
            "stun:192.0.2.1:19302",
            Scheme::Stun,
            "192.0.2.1",
            19302,
            None,
        ),
        (
            "STUN:Host.Example",
            Scheme::Stun,
            "Host.Example",
            3478,
            None,
        ),
        (
            "turn:turn.example.net",
            Scheme::Turn,
            "turn.example.net",
            3478,
            None,
        ),
        (
            "turn:turn.example.net:3479?transport=udp",
            Scheme::Turn,
            "turn.example.net",
            3479,
            Some("udp"),
        ),
        (
            "turns:turn.example.net?transport=tcp",
            Scheme::Turns,
            "turn.example.net",
            5349,
            Some("tcp"),
        ),
        (
            "turns:turn.example.net:443?transport=TCP",
            Scheme::Turns,
            "turn.example.net",
            443,
            Some("tcp"),
        ),
        (
            "stun:[2001:db8::1]:3478",
            Scheme::Stun,
            "[2001:db8::1]",
            3478,
            None,
        ),
        (
            "turn:[::1]?transport=udp",
            Scheme::Turn,
            "[::1]",
            3478,
            Some("udp"),
        ),
    ];
    for (url, scheme, host, port, transport) in cases {
        let uri = parse_uri(url).unwrap_or_else(|error| panic!("{url}: {error}"));
        assert_eq!(uri.scheme, scheme, "{url}");
        assert_eq!(uri.host, host, "{url}");
        assert_eq!(uri.port, port, "{url}");
        assert_eq!(uri.transport.as_deref(), transport, "{url}");
    }
}

#[test]
fn uri_errors_name_problem() {
    let cases = [
        ("http://stun.example.net", "scheme"),
        ("stuns:stun.example.net", "stuns"),
        ("stun://stun.example.net:3478", "without '//'"),
        ("stun:", "host is missing"),
        ("stun::3478", "host is missing"),
        ("stun:host:0", "port '0'"),
        ("stun:host:70000", "port '70000'"),
        ("stun:host:", "port ''"),
        ("stun:host?transport=udp", "takes no query"),
        ("turn:host?transport=sctp", "transport 'sctp'"),
        ("turn:host?proto=udp", "query 'proto=udp'"),
        ("turn:[2001:db8::1", "closing ']'"),
        ("turn:[not-v6]:3478", "not an IPv6 address"),
        ("turn:[::1]x", "after the IPv6 address"),
        ("turn:ho st", "contains ' '"),
        ("turn:host/path", "contains '/'"),
    ];
    for (url, expected) in cases {
        let error = parse_uri(url).expect_err(url);
        assert!(error.contains(expected), "{url}: {error}");
    }
}

#[test]
fn parse_keeps_url_as_given() {
    let server = IceServer::parse(" stun:stun.example.net:19302 ", None, None).unwrap();
    assert_eq!(server.url, "stun:stun.example.net:19302");
    assert!(!server.is_turn());
}

#[test]
fn parse_requires_turn_credentials() {
    let missing_credential = IceServer::parse("turn:host", Some("user".into()), None);
    let error = missing_credential.unwrap_err();
    assert!(
        error.contains("needs both a username and a credential"),
        "{error}"
    );

    let missing_user = IceServer::parse("turns:host", None, Some(secret("pw")));
    assert!(missing_user.is_err());

    let complete = IceServer::parse("turns:host", Some("user".into()), Some(secret("pw")));
    assert!(complete.unwrap().is_turn());
}

#[test]
fn parse_error_hides_userinfo() {
    let error = IceServer::parse("turn:alice:hunter2@host", None, None).unwrap_err();
    assert!(!error.contains("hunter2"), "{error}");
    assert!(error.contains("turn:<redacted>@host"), "{error}");
    assert!(error.contains("carries credentials"), "{error}");
}

#[test]
fn describe_hides_credentials() {
    let server = turn("turn:host:3478?transport=udp", "alice", "hunter2");
    assert_eq!(server.describe(), "turn:host:3478?transport=udp");
    assert!(!format!("{server:?}").contains("hunter2"));

    let built_by_hand = stun("turn:alice:hunter2@host");
    assert_eq!(built_by_hand.describe(), "turn:<redacted>@host");
}

#[test]
fn webrtcbin_uri_by_form() {
    let cases = [
        (
            stun("stun:stun.example.net"),
            "stun://stun.example.net:3478",
        ),
        (
            stun("stun:[2001:db8::1]:19302"),
            "stun://[2001:db8::1]:19302",
        ),
        (
            turn("turn:turn.example.net?transport=udp", "alice", "pw"),
            "turn://alice:pw@turn.example.net:3478?transport=udp",
        ),
        (
            turn("turns:turn.example.net:443?transport=tcp", "alice", "pw"),
            "turns://alice:pw@turn.example.net:443?transport=tcp",
        ),
        (
            turn("turns:turn.example.net", "alice", "pw"),
            "turns://alice:pw@turn.example.net:5349",
        ),
        (
            turn("turn:[::1]:3478", "alice", "pw"),
            "turn://alice:pw@[::1]:3478",
        ),
    ];
    for (server, expected) in cases {
        assert_eq!(server.webrtcbin_uri().expose(), expected, "{}", server.url);
    }
}

#[test]
fn webrtcbin_uri_percent_encodes_userinfo() {
    let server = turn(
        "turn:host:3478?transport=udp",
        "1700000000:user@example.com",
        "p@ss:w/rd;,=+ é%",
    );
    let uri = server.webrtcbin_uri();
    assert_eq!(
        uri.expose(),
        "turn://1700000000%3Auser%40example.com:p%40ss%3Aw%2Frd%3B%2C%3D%2B%20%C3%A9%25\
         @host:3478?transport=udp"
    );
    assert!(!format!("{uri:?}").contains("p%40ss"));
    assert_eq!(uri.kind(), "TURN server URI");
}

#[test]
fn webrtcbin_uri_keeps_unreserved() {
    let server = turn("turn:host", "a-b.c_d~e", "A1-._~");
    assert_eq!(
        server.webrtcbin_uri().expose(),
        "turn://a-b.c_d~e:A1-._~@host:3478"
    );
}

#[test]
fn link_several_headers() {
    let servers = parse_link_headers([
        r#"<stun:stun.example.net>; rel="ice-server""#,
        r#"<turn:turn.example.net?transport=udp>; rel="ice-server"; username="user"; credential="pw"; credential-type="password""#,
    ]);
    assert_eq!(
        servers,
        vec![
            stun("stun:stun.example.net"),
            turn("turn:turn.example.net?transport=udp", "user", "pw"),
        ]
    );
}

#[test]
fn link_one_comma_joined_header() {
    let servers = parse_link_headers([concat!(
        r#"<stun:a.example>; rel="ice-server", "#,
        r#"<turn:b.example:3479>; rel="ice-server"; username="u"; credential="c","#,
        r#"<stun:c.example:19302>;rel=ice-server"#,
    )]);
    assert_eq!(
        servers,
        vec![
            stun("stun:a.example"),
            turn("turn:b.example:3479", "u", "c"),
            stun("stun:c.example:19302"),
        ]
    );
}

#[test]
fn link_unquoted_params() {
    let servers = parse_link_headers([
        "<turn:host?transport=tcp>;rel=ice-server;username=user;credential=abc/def+ghi==;\
         credential-type=password",
    ]);
    assert_eq!(
        servers,
        vec![turn("turn:host?transport=tcp", "user", "abc/def+ghi==")]
    );
}

#[test]
fn link_whitespace_around_separators() {
    let servers = parse_link_headers([
        " \t<stun:host> ;  rel = \"ice-server\" ,  ,<stun:other> ;rel=\"ice-server\"\t",
    ]);
    assert_eq!(servers, vec![stun("stun:host"), stun("stun:other")]);
}

#[test]
fn link_quoted_credential_with_separators() {
    let servers = parse_link_headers([concat!(
        r#"<turn:host>; rel="ice-server"; username="a;b,c"; credential="x,y;z \"q\" \\"; "#,
        r#"credential-type="password", <stun:after>; rel="ice-server""#,
    )]);
    assert_eq!(
        servers,
        vec![
            turn("turn:host", "a;b,c", r#"x,y;z "q" \"#),
            stun("stun:after"),
        ]
    );
}

#[test]
fn link_rel_lists() {
    let servers = parse_link_headers([
        r#"<stun:one>; rel="ice-server other""#,
        r#"<stun:two>; rel="other ICE-SERVER""#,
        r#"<stun:three>; rel="ice-servers""#,
    ]);
    assert_eq!(servers, vec![stun("stun:one"), stun("stun:two")]);
}

#[test]
fn link_other_rels_ignored() {
    let servers = parse_link_headers([
        r#"<https://edge.example/whip/x>; rel="urn:ietf:params:whip:ext:example", <stun:a>; rel="ice-server""#,
        r#"</layer>; rel="urn:ietf:params:whip:layer""#,
        r#"<stun:no-rel>"#,
        r#"<stun:no-value>; rel"#,
    ]);
    assert_eq!(servers, vec![stun("stun:a")]);
}

#[test]
fn link_first_param_wins() {
    let servers = parse_link_headers([
        r#"<turn:host>; rel="ice-server"; username="first"; username="second"; credential="c""#,
        r#"<stun:x>; rel="other"; rel="ice-server""#,
    ]);
    assert_eq!(servers, vec![turn("turn:host", "first", "c")]);
}

#[test]
fn link_malformed_entries_skipped() {
    let cases = [
        // No angle brackets around the target.
        r#"stun:bad; rel="ice-server", <stun:good>; rel="ice-server""#,
        // Garbage after the target.
        r#"<stun:bad> junk; rel="ice-server", <stun:good>; rel="ice-server""#,
        // A parameter without a name.
        r#"<stun:bad>; ="ice-server", <stun:good>; rel="ice-server""#,
        // A target that is no STUN or TURN URI.
        r#"<https://bad>; rel="ice-server", <stun:good>; rel="ice-server""#,
        // TURN without credentials.
        r#"<turn:bad>; rel="ice-server", <stun:good>; rel="ice-server""#,
        // A credential type webrtcbin cannot use.
        r#"<turn:bad>; rel="ice-server"; username="u"; credential="c"; credential-type="oauth", <stun:good>; rel="ice-server""#,
        // A comma inside a malformed entry's quoted value.
        r#"<stun:bad> x "a,b", <stun:good>; rel="ice-server""#,
    ];
    for header in cases {
        assert_eq!(
            parse_link_headers([header]),
            vec![stun("stun:good")],
            "{header}"
        );
    }
}

#[test]
fn link_unterminated_entries_end_header() {
    let cases = [
        r#"<stun:good>; rel="ice-server", <stun:bad; rel="ice-server""#,
        r#"<stun:good>; rel="ice-server", <turn:bad>; rel="ice-server"; credential="open"#,
    ];
    for header in cases {
        assert_eq!(
            parse_link_headers([header]),
            vec![stun("stun:good")],
            "{header}"
        );
    }
}

#[test]
fn link_turns_and_ipv6() {
    let servers = parse_link_headers([
        r#"<turns:turn.example.net:443?transport=tcp>; rel="ice-server"; username="u"; credential="c""#,
        r#"<stun:[2001:db8::1]:3478>; rel="ice-server""#,
        r#"<turn:[2001:db8::2]?transport=udp>; rel="ice-server"; username="u"; credential="c""#,
    ]);
    assert_eq!(
        servers,
        vec![
            turn("turns:turn.example.net:443?transport=tcp", "u", "c"),
            stun("stun:[2001:db8::1]:3478"),
            turn("turn:[2001:db8::2]?transport=udp", "u", "c"),
        ]
    );
    assert!(servers[0].is_turn());
    assert!(!servers[1].is_turn());
}

#[test]
fn link_empty_values() {
    assert!(parse_link_headers(["", " , ,"]).is_empty());
    assert!(parse_link_headers(std::iter::empty()).is_empty());
}

#[test]
fn link_warnings_hide_credentials() {
    let logs = crate::telemetry::capture_logs(|| {
        parse_link_headers([
            r#"<turn:bad>; rel="ice-server"; username="u"; credential="hunter2"; credential-type="oauth""#,
            r#"<turn:bad?transport=sctp>; rel="ice-server"; username="u"; credential="hunter2""#,
            r#"<turn:alice:hunter2@host>; rel="ice-server"; username="u"; credential="c""#,
            r#"<turn:bad> credential="hunter2""#,
            r#"<turn:bad>; rel="ice-server"; credential="hunter2"#,
        ]);
    });
    assert_eq!(logs.matches("WARN").count(), 5, "{logs}");
    assert!(!logs.contains("hunter2"), "{logs}");
    assert!(logs.contains("credential-type 'oauth'"), "{logs}");
    assert!(logs.contains("transport 'sctp'"), "{logs}");
}
