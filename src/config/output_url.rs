//! Parses `--output` URLs into a transport and its address.

use super::ConfigError;
use std::net::Ipv6Addr;

/// A destination as its URL names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputUrl {
    Srt {
        host: String,
        port: u16,
    },
    /// `rtmp://` or, with `tls`, `rtmps://` (TLS from the first byte).
    Rtmp {
        tls: bool,
        host: String,
        port: u16,
        /// The stream path from the URL, as in `inputs/rtmp-<uuid>`.
        path: Option<String>,
    },
    /// A WHIP endpoint, `https://host:port/<path>/whip` (or `http://`).
    Whip {
        tls: bool,
        host: String,
        port: u16,
        /// The stream path from the URL, without the `/whip` that ends it.
        path: Option<String>,
    },
}

/// The SRT port of the TRaX edge, used when the URL gives none.
pub const SRT_DEFAULT_PORT: u16 = 8890;
/// The RTMP and RTMPS ports of the TRaX edge.
pub const RTMP_DEFAULT_PORT: u16 = 1935;
pub const RTMPS_DEFAULT_PORT: u16 = 1936;

pub fn parse(url: &str) -> Result<OutputUrl, ConfigError> {
    let invalid =
        |why: &str| ConfigError::Invalid(format!("invalid --output '{}': {why}", redact_url(url)));
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        invalid("use srt://host:port, rtmp(s)://host:port/path or https://host:port/path/whip")
    })?;
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "srt" => parse_srt(rest).map_err(|why| invalid(&why)),
        "rtmp" | "rtmps" => parse_rtmp(scheme == "rtmps", rest).map_err(|why| invalid(&why)),
        "http" | "https" => parse_whip(scheme == "https", rest).map_err(|why| invalid(&why)),
        _ => Err(invalid(
            "unknown scheme; use srt://host:port, rtmp(s)://host:port/path or \
             https://host:port/path/whip",
        )),
    }
}

fn parse_srt(rest: &str) -> Result<OutputUrl, String> {
    if rest.contains('@') {
        return Err(
            "SRT URLs carry no credentials; give the session token through \
                    TRAX_SESSION_TOKEN or --token-file"
                .into(),
        );
    }
    if rest.contains('?') {
        return Err(
            "SRT URL options are not read; the streamid is built from --path and the \
                    credentials, and --latency and --passphrase-file set the rest"
                .into(),
        );
    }
    if rest.contains('#') {
        return Err("an SRT URL has no fragment ('#…'); remove it".into());
    }
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') {
        return Err("an SRT URL has no path; give the stream path with --path".into());
    }
    let (host, port) = split_host_port(authority, SRT_DEFAULT_PORT)?;
    Ok(OutputUrl::Srt { host, port })
}

fn parse_rtmp(tls: bool, rest: &str) -> Result<OutputUrl, String> {
    let authority_end = rest.find('/').unwrap_or(rest.len());
    if rest[..authority_end].contains('@') {
        return Err(
            "the URL carries credentials, which would show in the process list; \
                    give the session token through TRAX_SESSION_TOKEN or --token-file, and \
                    --rtmp-credentials chooses where the bridge places it"
                .into(),
        );
    }
    if rest.contains('?') || rest.contains('#') {
        return Err(
            "the bridge builds the publish name and its query itself; give the URL \
                    as rtmp(s)://host:port/path only"
                .into(),
        );
    }
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path.trim_end_matches('/')),
        None => (rest, ""),
    };
    let default_port = if tls {
        RTMPS_DEFAULT_PORT
    } else {
        RTMP_DEFAULT_PORT
    };
    let (host, port) = split_host_port(authority, default_port)?;
    Ok(OutputUrl::Rtmp {
        tls,
        host,
        port,
        path: (!path.is_empty()).then(|| path.to_string()),
    })
}

fn parse_whip(tls: bool, rest: &str) -> Result<OutputUrl, String> {
    let authority_end = rest.find('/').unwrap_or(rest.len());
    if rest[..authority_end].contains('@') {
        return Err(
            "the URL carries credentials, which would show in the process list; give the \
             session token through TRAX_SESSION_TOKEN or --token-file, and the bridge sends \
             it as a Bearer header"
                .into(),
        );
    }
    if rest.contains('?') || rest.contains('#') {
        return Err(
            "a WHIP URL takes no query or fragment: the token goes in the Authorization \
             header; give https://host:port/<path>/whip"
                .into(),
        );
    }
    let (authority, path) = match rest.split_once('/') {
        Some((authority, path)) => (authority, path.trim_end_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = split_host_port(authority, if tls { 443 } else { 80 })?;
    let path = match path {
        "" => None,
        "whip" => return Err("the stream path is missing before /whip".into()),
        _ => Some(
            path.strip_suffix("/whip")
                .ok_or("a WHIP URL ends in /whip, as in https://host:8889/inputs/whip-<uuid>/whip")?
                .to_string(),
        ),
    };
    Ok(OutputUrl::Whip {
        tls,
        host,
        port,
        path,
    })
}

fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address needs its closing ']'")?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("'[{host}]' is not an IPv6 address"));
        }
        let port =
            match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(|| {
                    format!("unexpected '{after}' after ']'; use [address]:port")
                })?),
            };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    if !authority.starts_with('[') {
        check_host_name(host)?;
    }
    let port = match port {
        None => default_port,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port > 0 => port,
            _ => return Err(format!("invalid port '{text}'")),
        },
    };
    Ok((host.to_string(), port))
}

/// Checks an unbracketed host: an IPv4 address or a DNS name.
fn check_host_name(host: &str) -> Result<(), String> {
    if host.contains(':') {
        return Err(format!(
            "invalid host '{host}': put an IPv6 address in brackets, as in srt://[::1]:8890"
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    match host.chars().find(|&c| !allowed(c)) {
        Some(c) => Err(format!(
            "invalid host '{host}': {c:?} is not allowed; use a DNS name or an IP address"
        )),
        None => Ok(()),
    }
}

/// The URL for error messages: userinfo, and whatever follows the host and
/// port (path, query, fragment), are replaced by `<redacted>`, because a user
/// used to other SRT tools may have put a streamid, token or passphrase there.
pub fn redact_url(url: &str) -> String {
    let (prefix, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let (userinfo, host_on) = match rest.rfind('@') {
        Some(at) => ("<redacted>@", &rest[at + 1..]),
        None => ("", rest),
    };
    let authority_end = host_on.find(['/', '?', '#']).unwrap_or(host_on.len());
    let (authority, tail) = host_on.split_at(authority_end);
    let tail = match tail.chars().next() {
        Some(delimiter) if tail.len() > 1 => format!("{delimiter}<redacted>"),
        _ => tail.to_string(),
    };
    format!("{prefix}{userinfo}{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srt(host: &str, port: u16) -> OutputUrl {
        OutputUrl::Srt {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_srt_urls() {
        let cases = [
            ("srt://127.0.0.1:9000", srt("127.0.0.1", 9000)),
            ("srt://ingest.example", srt("ingest.example", 8890)),
            ("SRT://ingest.example:8890/", srt("ingest.example", 8890)),
            ("srt://[::1]:7000", srt("::1", 7000)),
            ("srt://[::1]", srt("::1", 8890)),
        ];
        for (url, expected) in cases {
            assert_eq!(parse(url).unwrap(), expected, "{url}");
        }
    }

    #[test]
    fn parses_rtmp_urls() {
        let rtmp = |tls: bool, host: &str, port: u16, path: Option<&str>| OutputUrl::Rtmp {
            tls,
            host: host.into(),
            port,
            path: path.map(str::to_string),
        };
        let cases = [
            (
                "rtmp://ingest.example/inputs/rtmp-1",
                rtmp(false, "ingest.example", 1935, Some("inputs/rtmp-1")),
            ),
            (
                "rtmps://ingest.example/inputs/rtmp-1/",
                rtmp(true, "ingest.example", 1936, Some("inputs/rtmp-1")),
            ),
            (
                "RTMPS://127.0.0.1:4443/a/b",
                rtmp(true, "127.0.0.1", 4443, Some("a/b")),
            ),
            ("rtmp://[::1]:1935", rtmp(false, "::1", 1935, None)),
            ("rtmp://host/", rtmp(false, "host", 1935, None)),
        ];
        for (url, expected) in cases {
            assert_eq!(parse(url).unwrap(), expected, "{url}");
        }
    }

    #[test]
    fn parses_whip_urls() {
        let whip = |tls: bool, host: &str, port: u16, path: Option<&str>| OutputUrl::Whip {
            tls,
            host: host.into(),
            port,
            path: path.map(str::to_string),
        };
        let cases = [
            (
                "https://edge.example:8889/inputs/whip-1/whip",
                whip(true, "edge.example", 8889, Some("inputs/whip-1")),
            ),
            (
                "http://127.0.0.1:8080/a/b/whip/",
                whip(false, "127.0.0.1", 8080, Some("a/b")),
            ),
            (
                "https://edge.example",
                whip(true, "edge.example", 443, None),
            ),
            ("HTTP://[::1]/", whip(false, "::1", 80, None)),
        ];
        for (url, expected) in cases {
            assert_eq!(parse(url).unwrap(), expected, "{url}");
        }
    }

    #[test]
    fn rejects_bad_urls() {
        let cases = [
            ("127.0.0.1:9000", "use srt://"),
            ("udp://127.0.0.1:9000", "unknown scheme"),
            ("https://host:8889/inputs/x", "ends in /whip"),
            ("https://host:8889/whip", "missing before /whip"),
            ("https://host/inputs/x/whip?token=1", "no query"),
            ("https://t:secret@host/inputs/x/whip", "carries credentials"),
            ("rtmp://trax:secret@host/inputs/x", "carries credentials"),
            (
                "rtmps://host/inputs/x?user=trax&pass=secret",
                "builds the publish name",
            ),
            ("rtmp://host:0/inputs/x", "invalid port '0'"),
            ("srt://host:0", "invalid port '0'"),
            ("srt://host:99999", "invalid port '99999'"),
            ("srt://:9000", "host is missing"),
            ("srt://host:9000?streamid=x", "options are not read"),
            ("srt://host:9000/inputs/x", "no path"),
            ("srt://[::1:9000", "closing ']'"),
            ("srt://[zz]:9000", "'[zz]' is not an IPv6 address"),
            ("srt://[::1]x:9000", "unexpected 'x:9000' after ']'"),
            ("srt://::1:9000", "put an IPv6 address in brackets"),
            ("srt://a b:9000", "invalid host 'a b'"),
            ("srt://127.0.0.1 :9000", "invalid host '127.0.0.1 '"),
            ("srt://host\t:9000", "'\\t' is not allowed"),
        ];
        for (url, expected) in cases {
            let error = parse(url).unwrap_err().to_string();
            assert!(error.contains(expected), "{url}: {error}");
        }
    }

    #[test]
    fn secrets_in_url_parts_never_echoed() {
        let cases = [
            (
                "srt://publish:inputs/x:trax:eyJsecret@host:9000",
                "'srt://<redacted>@host:9000'",
            ),
            (
                "srt://host:9000?streamid=publish:inputs/x:trax:eyJsecret&passphrase=p4ss",
                "'srt://host:9000?<redacted>'",
            ),
            (
                "srt://host:9000/publish:inputs/x:trax:eyJsecret",
                "'srt://host:9000/<redacted>'",
            ),
            ("srt://host:9000#eyJsecret", "'srt://host:9000#<redacted>'"),
            ("publish:inputs/x:trax:eyJsecret@host", "'<redacted>@host'"),
        ];
        for (url, shown) in cases {
            let error = parse(url).unwrap_err().to_string();
            assert!(!error.contains("eyJsecret"), "{url}: {error}");
            assert!(!error.contains("p4ss"), "{url}: {error}");
            assert!(error.contains(shown), "{url}: {error}");
        }
    }

    #[test]
    fn plain_urls_echoed_whole() {
        let cases = ["srt://host:0", "srt://a b:9000", "udp://127.0.0.1:9000"];
        for url in cases {
            let error = parse(url).unwrap_err().to_string();
            assert!(error.contains(&format!("'{url}'")), "{url}: {error}");
        }
    }

    #[test]
    fn userinfo_never_echoed() {
        let error = parse("srt://trax:eyJsecret@host:9000")
            .unwrap_err()
            .to_string();
        assert!(!error.contains("eyJsecret"), "{error}");
        assert!(error.contains("<redacted>@host:9000"), "{error}");
    }
}
