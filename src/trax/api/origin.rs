//! Checks the API origin a user gives and turns it into the `/v1` base URL.
//!
//! The API key travels in a header on every request, so the origin must be
//! HTTPS, except on a loopback host where nothing leaves the machine. A
//! URL with a user name, password, query or fragment is rejected: the
//! first would put a secret on the command line, the others would be
//! silently dropped.

use std::net::{Ipv4Addr, Ipv6Addr};
use url::{Host, Url};

/// The version prefix the client appends to the origin.
pub const API_PREFIX: &str = "/v1";

/// A checked origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BaseUrl {
    /// The origin (and any path prefix) followed by `/v1`, without a
    /// trailing slash.
    pub url: String,
    /// Whether the user's origin already ended in `/v1`.
    pub had_prefix: bool,
    /// Whether the host is a loopback address or `localhost`.
    pub loopback: bool,
}

/// Returns the base URL for `origin`, or why it is unusable.
pub(crate) fn base_url(origin: &str) -> Result<BaseUrl, String> {
    let trimmed = origin.trim();
    if trimmed.is_empty() {
        return Err("it is empty: give the API origin, as in https://api.example.com".into());
    }
    let url = Url::parse(trimmed).map_err(|error| {
        format!("it is not a URL ({error}): give the API origin, as in https://api.example.com")
    })?;

    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "it contains a user name or password: remove them, the API key is sent in a header"
                .into(),
        );
    }
    if url.query().is_some() {
        return Err("it contains a query ('?…'): remove it".into());
    }
    if url.fragment().is_some() {
        return Err("it contains a fragment ('#…'): remove it".into());
    }

    let host = url
        .host()
        .ok_or("it has no host: give the API origin, as in https://api.example.com")?;
    let loopback = is_loopback(&host);
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "plain http:// to '{host}' would send the API key unencrypted: use https://, \
                 or a loopback host (127.0.0.1, ::1, localhost) for a local test server"
            ))
        }
        scheme => return Err(format!("its scheme '{scheme}' is not https: use https://")),
    }

    let path = url.path().trim_end_matches('/');
    let (prefix, had_prefix) = match path.strip_suffix(API_PREFIX) {
        Some(before) => (before, true),
        None => (path, false),
    };
    let mut base = url.clone();
    base.set_path(&format!("{prefix}{API_PREFIX}"));
    Ok(BaseUrl {
        url: base.as_str().trim_end_matches('/').to_string(),
        had_prefix,
        loopback,
    })
}

/// Returns `origin` fit for a message: any user information and query are
/// replaced by `***`, because either may carry a secret.
pub(crate) fn redact_origin(origin: &str) -> String {
    let origin = origin.trim();
    let authority_start = origin.find("://").map_or(0, |index| index + 3);
    let rest = &origin[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_len);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***{}", &authority[at..]),
        None => authority.to_string(),
    };
    let tail = match tail.find('?') {
        Some(query) => format!("{}?***", &tail[..query]),
        None => tail.to_string(),
    };
    format!("{}{authority}{tail}", &origin[..authority_start])
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(address) => Ipv4Addr::is_loopback(address),
        Host::Ipv6(address) => Ipv6Addr::is_loopback(address),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_origins() {
        let cases = [
            (
                "https://api.example.com",
                "https://api.example.com/v1",
                false,
            ),
            (
                "https://api.example.com/",
                "https://api.example.com/v1",
                false,
            ),
            (
                "https://api.example.com/v1",
                "https://api.example.com/v1",
                true,
            ),
            (
                "https://api.example.com/v1/",
                "https://api.example.com/v1",
                true,
            ),
            (
                "https://API.example.com:8443",
                "https://api.example.com:8443/v1",
                false,
            ),
            (
                "https://example.com/trax",
                "https://example.com/trax/v1",
                false,
            ),
            (
                "https://example.com/trax/v1",
                "https://example.com/trax/v1",
                true,
            ),
            (
                "https://example.com/v10",
                "https://example.com/v10/v1",
                false,
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1", false),
            ("http://127.9.8.7", "http://127.9.8.7/v1", false),
            ("http://[::1]:9000/", "http://[::1]:9000/v1", false),
            ("http://localhost:9000", "http://localhost:9000/v1", false),
            ("http://LocalHost", "http://localhost/v1", false),
            (
                "  https://api.example.com  ",
                "https://api.example.com/v1",
                false,
            ),
        ];
        for (origin, expected_url, expected_prefix) in cases {
            let base = base_url(origin).unwrap_or_else(|error| panic!("{origin}: {error}"));
            assert_eq!(base.url, expected_url, "{origin}");
            assert_eq!(base.had_prefix, expected_prefix, "{origin}");
        }
    }

    #[test]
    fn loopback_hosts_marked() {
        let cases = [
            ("http://127.0.0.1:8080", true),
            ("https://[::1]", true),
            ("https://localhost", true),
            ("https://api.example.com", false),
            ("https://10.0.0.1", false),
        ];
        for (origin, expected) in cases {
            assert_eq!(base_url(origin).unwrap().loopback, expected, "{origin}");
        }
    }

    #[test]
    fn rejected_origins() {
        let cases = [
            ("", "it is empty"),
            ("api.example.com", "it is not a URL"),
            (
                "http://api.example.com",
                "would send the API key unencrypted",
            ),
            ("http://10.0.0.5:8080", "would send the API key unencrypted"),
            ("http://128.0.0.1", "would send the API key unencrypted"),
            (
                "http://localhost.example.com",
                "would send the API key unencrypted",
            ),
            ("http://[::2]", "would send the API key unencrypted"),
            ("ftp://api.example.com", "scheme 'ftp' is not https"),
            ("https://user:pw@api.example.com", "user name or password"),
            ("https://user@api.example.com", "user name or password"),
            ("https://api.example.com/?x=1", "contains a query"),
            ("https://api.example.com/#top", "contains a fragment"),
            ("file:///etc/hosts", "no host"),
        ];
        for (origin, expected) in cases {
            let error = base_url(origin).unwrap_err();
            assert!(error.contains(expected), "{origin}: '{error}'");
        }
    }

    #[test]
    fn redaction_hides_userinfo_and_query() {
        let cases = [
            ("https://api.example.com/v1", "https://api.example.com/v1"),
            (
                "https://u:pw@api.example.com/x",
                "https://***@api.example.com/x",
            ),
            ("https://pw@h", "https://***@h"),
            ("user:pw@host/path", "***@host/path"),
            ("https://h/p?key=abc#f", "https://h/p?***"),
            ("https://h/a@b", "https://h/a@b"),
        ];
        for (origin, expected) in cases {
            assert_eq!(redact_origin(origin), expected, "{origin}");
        }
    }

    #[test]
    fn rejection_never_shows_password() {
        let error = base_url("https://user:hunter2@api.example.com").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
    }
}
