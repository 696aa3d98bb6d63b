//! The identity provider's settings and the registered app the bridge logs
//! in as.

use super::error::OAuthError;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;
use url::{Host, Url};

/// The TRaX development identity provider, used when no issuer is set.
pub const DEFAULT_ISSUER: &str = "https://auth-dev.traxstreaming.live";

/// Scopes of every login, as the TRaX client guide lists them.
pub const SCOPES: [&str; 3] = ["openid", "profile", "email"];

/// Paths the TRaX client guide documents, for a provider without discovery.
pub const FALLBACK_AUTHORIZE_PATH: &str = "/oauth/v2/authorize";
pub const FALLBACK_TOKEN_PATH: &str = "/oauth/v2/token";
pub const FALLBACK_END_SESSION_PATH: &str = "/oidc/v1/end_session";

/// How long `bridge login` waits for the browser's redirect.
pub const DEFAULT_REDIRECT_TIMEOUT: Duration = Duration::from_secs(300);

/// Limit on each request to the identity provider.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The identity provider and the app's registration.
#[derive(Clone, Debug)]
pub struct OAuthSettings {
    /// The issuer URL, checked by [`check_issuer`].
    pub issuer: Url,
    /// The registered native app's client id; not a secret.
    pub client_id: Option<String>,
    /// Extra CA certificate (PEM) for a provider with a private CA.
    pub ca_file: Option<PathBuf>,
    /// The token file's directory in place of the default one.
    pub state_dir: Option<PathBuf>,
}

impl OAuthSettings {
    /// Returns the client id, or the error that explains how to get one.
    pub fn require_client_id(&self) -> Result<&str, OAuthError> {
        self.client_id.as_deref().ok_or(OAuthError::MissingClientId)
    }
}

/// Checks an issuer URL: https, or http on a loopback host, without user
/// information, query or fragment.
pub fn check_issuer(issuer: &str) -> Result<Url, OAuthError> {
    let invalid = |fix: &str| OAuthError::InvalidSetting {
        setting: "OAuth issuer",
        value: issuer.to_string(),
        fix: fix.to_string(),
    };
    let url = Url::parse(issuer.trim())
        .map_err(|_| invalid("give the issuer URL, as in https://auth.example.com"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("remove the user name and password from it"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("remove the query and fragment from it"));
    }
    let Some(host) = url.host() else {
        return Err(invalid(
            "give the issuer URL, as in https://auth.example.com",
        ));
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&host) => Ok(url),
        "http" => Err(invalid(
            "use https://; plain http:// is allowed only for a loopback issuer \
             (127.0.0.1, ::1, localhost)",
        )),
        _ => Err(invalid("use an https:// URL")),
    }
}

/// Maximum length of a client id in bytes. Registered ids are far shorter,
/// and the id goes into every authorization URL and token request.
pub const MAX_CLIENT_ID_LEN: usize = 255;

/// Checks a client id: printable ASCII without spaces, at most
/// [`MAX_CLIENT_ID_LEN`] bytes.
pub fn check_client_id(client_id: &str) -> Result<String, OAuthError> {
    let trimmed = client_id.trim();
    if trimmed.len() > MAX_CLIENT_ID_LEN {
        return Err(OAuthError::InvalidSetting {
            setting: "OAuth client id",
            value: format!(
                "{} ({} bytes)",
                super::error::excerpt(trimmed, 40),
                trimmed.len()
            ),
            fix: format!(
                "it is longer than {MAX_CLIENT_ID_LEN} bytes: give the client id TRaX \
                 registered for this app"
            ),
        });
    }
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(OAuthError::InvalidSetting {
            setting: "OAuth client id",
            value: client_id.escape_debug().to_string(),
            fix: "give the client id TRaX registered for this app (printable characters, \
                  no spaces)"
                .into(),
        });
    }
    Ok(trimmed.to_string())
}

pub(crate) fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(address) => Ipv4Addr::is_loopback(address),
        Host::Ipv6(address) => Ipv6Addr::is_loopback(address),
    }
}

/// Returns whether `url` is an http(s) URL on a loopback host.
pub(crate) fn is_loopback_url(url: &Url) -> bool {
    url.host().is_some_and(|host| is_loopback(&host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_accepted() {
        for issuer in [
            DEFAULT_ISSUER,
            "https://auth.example.com/realms/trax",
            "http://127.0.0.1:4000",
            "http://[::1]:4000",
            "http://localhost:4000",
        ] {
            assert!(check_issuer(issuer).is_ok(), "{issuer}");
        }
    }

    #[test]
    fn issuers_rejected() {
        let cases = [
            ("http://auth.example.com", "only for a loopback issuer"),
            ("http://10.0.0.1", "only for a loopback issuer"),
            ("ftp://auth.example.com", "use an https:// URL"),
            ("https://u:p@auth.example.com", "user name and password"),
            ("https://auth.example.com/?a=1", "query and fragment"),
            ("auth.example.com", "give the issuer URL"),
        ];
        for (issuer, expected) in cases {
            let error = check_issuer(issuer).unwrap_err().to_string();
            assert!(error.contains(expected), "{issuer}: {error}");
            assert!(error.contains("OAuth issuer"), "{error}");
        }
    }

    #[test]
    fn client_ids_checked() {
        assert_eq!(check_client_id(" bridge-cli ").unwrap(), "bridge-cli");
        for bad in ["", "a b", "a\tb"] {
            let error = check_client_id(bad).unwrap_err();
            assert_eq!(error.exit_status(), crate::exit::ExitStatus::Usage);
        }
    }

    #[test]
    fn long_client_id_rejected() {
        let longest = "a".repeat(MAX_CLIENT_ID_LEN);
        assert_eq!(check_client_id(&longest).unwrap(), longest);

        let error = check_client_id(&"a".repeat(100_000)).unwrap_err();
        assert_eq!(error.exit_status(), crate::exit::ExitStatus::Usage);
        let message = error.to_string();
        assert!(message.contains("100000 bytes"), "{message}");
        assert!(message.contains("longer than 255 bytes"), "{message}");
        assert!(
            message.len() < 400,
            "the message quotes the whole id: {message}"
        );
    }

    #[test]
    fn missing_client_id_says_where() {
        let settings = OAuthSettings {
            issuer: check_issuer(DEFAULT_ISSUER).unwrap(),
            client_id: None,
            ca_file: None,
            state_dir: None,
        };
        let error = settings.require_client_id().unwrap_err().to_string();
        for part in [
            "--oauth-client-id",
            "TRAX_OAUTH_CLIENT_ID",
            "oauth_client_id",
        ] {
            assert!(error.contains(part), "{error}");
        }
    }
}
