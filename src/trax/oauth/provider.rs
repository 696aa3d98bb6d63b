//! The identity provider's endpoints, from its discovery document or the
//! paths the TRaX client guide documents, and the HTTPS client that talks
//! to it.

use super::error::{excerpt, OAuthError};
use super::settings::{self, is_loopback_url, OAuthSettings, REQUEST_TIMEOUT};
use crate::trax::api::{find_tls_error, innermost_cause, read_ca_bundle, USER_AGENT};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, DeviceAuthorizationUrl, DiscoveryError, EndSessionUrl,
    HttpClientError, HttpRequest, HttpResponse, IssuerUrl, ProviderMetadata, RevocationUrl,
    SyncHttpClient,
};
use serde::{Deserialize, Serialize};
use std::error::Error as StdError;
use std::io::Read;
use tracing::{debug, info};
use url::Url;

/// Metadata fields beyond OpenID Connect Discovery that the bridge uses.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExtraMetadata {
    pub device_authorization_endpoint: Option<DeviceAuthorizationUrl>,
    pub revocation_endpoint: Option<RevocationUrl>,
    pub end_session_endpoint: Option<EndSessionUrl>,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The endpoints of one identity provider.
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub issuer: IssuerUrl,
    pub authorization: Url,
    pub token: Url,
    pub device_authorization: Option<Url>,
    pub revocation: Option<Url>,
    pub end_session: Option<Url>,
    /// The provider's signing keys, to verify ID tokens; `None` without
    /// discovery, when the ID token's claims are not used.
    pub jwks: Option<CoreJsonWebKeySet>,
}

/// The HTTPS client for the identity provider and its endpoints.
pub struct Provider {
    pub http: LimitedClient,
    pub endpoints: Endpoints,
}

/// Maximum size of a response body from the identity provider. Discovery
/// documents, key sets and token responses are a few KiB, and the OAuth
/// crates read a body into memory whole.
pub const MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// An HTTP client for the OAuth crates that fails a response whose body
/// is larger than [`MAX_RESPONSE_BYTES`] without reading the rest.
pub struct LimitedClient(reqwest::blocking::Client);

impl SyncHttpClient for LimitedClient {
    type Error = HttpClientError<reqwest::Error>;

    fn call(&self, request: HttpRequest) -> Result<HttpResponse, Self::Error> {
        let request = request.try_into().map_err(Box::new)?;
        let response = self.0.execute(request).map_err(Box::new)?;
        let mut builder = openidconnect::http::Response::builder()
            .status(response.status())
            .version(response.version());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }

        let mut body = Vec::new();
        response
            .take(MAX_RESPONSE_BYTES + 1)
            .read_to_end(&mut body)?;
        if body.len() as u64 > MAX_RESPONSE_BYTES {
            return Err(HttpClientError::Other(format!(
                "the response body is larger than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        builder.body(body).map_err(HttpClientError::Http)
    }
}

/// Builds the HTTPS client: rustls with the web PKI roots plus `ca_file`,
/// TLS 1.2 or later, no redirects (the token endpoint must respond itself),
/// and a timeout per request.
pub fn http_client(
    ca_file: Option<&std::path::Path>,
    loopback: bool,
) -> Result<LimitedClient, OAuthError> {
    let mut builder = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(REQUEST_TIMEOUT)
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none());
    if loopback {
        builder = builder.no_proxy();
    }
    if let Some(path) = ca_file {
        let certificates = read_ca_bundle(path).map_err(|reason| OAuthError::CaFile {
            path: path.to_path_buf(),
            reason,
        })?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    let client = builder.build().map_err(|error| OAuthError::Transport {
        operation: "building the HTTPS client".into(),
        cause: innermost_cause(&error),
    })?;
    Ok(LimitedClient(client))
}

impl Provider {
    /// Reads the provider's discovery document, or falls back to the
    /// documented paths when the provider publishes none (`404`).
    pub fn discover(settings: &OAuthSettings) -> Result<Self, OAuthError> {
        let http = http_client(
            settings.ca_file.as_deref(),
            is_loopback_url(&settings.issuer),
        )?;
        let issuer_text = settings.issuer.as_str().trim_end_matches('/').to_string();
        let issuer =
            IssuerUrl::new(issuer_text.clone()).map_err(|error| OAuthError::InvalidSetting {
                setting: "OAuth issuer",
                value: issuer_text.clone(),
                fix: format!("give a valid URL ({error})"),
            })?;
        let operation = format!("{issuer_text}/.well-known/openid-configuration");
        let endpoints = match Metadata::discover(&issuer, &http) {
            Ok(metadata) => from_metadata(metadata),
            Err(DiscoveryError::Response(status, _, _)) if status.as_u16() == 404 => {
                info!(
                    issuer = %issuer_text,
                    "the identity provider publishes no discovery document; using the \
                     documented endpoint paths"
                );
                fallback_endpoints(issuer, &settings.issuer)?
            }
            // The one validation is that the document names this issuer
            // (OpenID Connect Discovery 1.0 section 4.3), so the setting is
            // what has to change.
            Err(DiscoveryError::Validation(reason)) => {
                return Err(OAuthError::InvalidSetting {
                    setting: "OAuth issuer",
                    value: issuer_text,
                    fix: format!(
                        "the provider's discovery document does not match it ({}): give \
                         --oauth-issuer (or TRAX_OAUTH_ISSUER, oauth_issuer) exactly as the \
                         document names the issuer",
                        excerpt(&reason, 300)
                    ),
                })
            }
            Err(error) => return Err(discovery_error(operation, error)),
        };
        debug!(?endpoints, "identity provider endpoints");
        Ok(Self { http, endpoints })
    }
}

fn from_metadata(metadata: Metadata) -> Endpoints {
    let extra = metadata.additional_metadata().clone();
    Endpoints {
        issuer: metadata.issuer().clone(),
        authorization: metadata.authorization_endpoint().url().clone(),
        token: metadata
            .token_endpoint()
            .map(|url| url.url().clone())
            .unwrap_or_else(|| join(metadata.issuer().url(), settings::FALLBACK_TOKEN_PATH)),
        device_authorization: extra.device_authorization_endpoint.map(|u| u.url().clone()),
        revocation: extra.revocation_endpoint.map(|u| u.url().clone()),
        end_session: extra.end_session_endpoint.map(|u| u.url().clone()),
        jwks: Some(metadata.jwks().clone()),
    }
}

/// Returns the endpoints the TRaX client guide documents for its provider.
fn fallback_endpoints(issuer: IssuerUrl, base: &Url) -> Result<Endpoints, OAuthError> {
    Ok(Endpoints {
        issuer,
        authorization: join(base, settings::FALLBACK_AUTHORIZE_PATH),
        token: join(base, settings::FALLBACK_TOKEN_PATH),
        device_authorization: None,
        revocation: None,
        end_session: Some(join(base, settings::FALLBACK_END_SESSION_PATH)),
        jwks: None,
    })
}

/// Appends `path` to the issuer's path.
fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    url.set_path(&format!("{prefix}{path}"));
    url
}

fn discovery_error(
    operation: String,
    error: DiscoveryError<HttpClientError<reqwest::Error>>,
) -> OAuthError {
    match error {
        DiscoveryError::Request(error) => transport_error(operation, &error),
        DiscoveryError::Response(status, body, _) => OAuthError::InvalidResponse {
            operation,
            reason: format!(
                "HTTP {status}: {}",
                excerpt(&String::from_utf8_lossy(&body), 200)
            ),
        },
        DiscoveryError::Parse(error) => OAuthError::InvalidResponse {
            operation,
            reason: format!("not a valid discovery document ({error})"),
        },
        other => OAuthError::InvalidResponse {
            operation,
            reason: other.to_string(),
        },
    }
}

/// Returns the error for a request that got no response, telling a TLS
/// failure apart from a network one.
pub(crate) fn transport_error(
    operation: String,
    error: &HttpClientError<reqwest::Error>,
) -> OAuthError {
    let inner: &(dyn StdError + 'static) = match error {
        HttpClientError::Reqwest(error) => error.as_ref(),
        HttpClientError::Other(reason) => {
            return OAuthError::InvalidResponse {
                operation,
                reason: reason.clone(),
            }
        }
        other => other,
    };
    if let Some(tls) = find_tls_error(inner) {
        let hint = match tls {
            rustls::Error::InvalidCertificate(_) => {
                ": for a provider with a private CA, give that CA's certificate (PEM) with \
                 --oauth-ca-file"
            }
            _ => "",
        };
        return OAuthError::Tls {
            operation,
            cause: tls.to_string(),
            hint,
        };
    }
    OAuthError::Transport {
        operation,
        cause: innermost_cause(inner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_uses_documented_paths() {
        let base = Url::parse("https://auth.example.com").unwrap();
        let issuer = IssuerUrl::new("https://auth.example.com".into()).unwrap();
        let endpoints = fallback_endpoints(issuer, &base).unwrap();
        assert_eq!(
            endpoints.authorization.as_str(),
            "https://auth.example.com/oauth/v2/authorize"
        );
        assert_eq!(
            endpoints.token.as_str(),
            "https://auth.example.com/oauth/v2/token"
        );
        assert_eq!(
            endpoints.end_session.unwrap().as_str(),
            "https://auth.example.com/oidc/v1/end_session"
        );
        assert!(endpoints.device_authorization.is_none());
    }

    #[test]
    fn join_keeps_issuer_path() {
        let base = Url::parse("https://auth.example.com/realm/").unwrap();
        assert_eq!(
            join(&base, "/oauth/v2/token").as_str(),
            "https://auth.example.com/realm/oauth/v2/token"
        );
    }

    /// Serves one response on loopback with a JSON body of `size` bytes,
    /// and returns the issuer URL.
    fn serve_discovery(size: usize) -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let mut stream = reader.into_inner();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                 Content-Length: {size}\r\nConnection: close\r\n\r\n"
            );
            // The client closes the connection once it has read enough.
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&vec![b' '; size]);
        });
        issuer
    }

    #[test]
    fn large_discovery_document_rejected() {
        let issuer = serve_discovery(2 * MAX_RESPONSE_BYTES as usize);
        let settings = OAuthSettings {
            issuer: settings::check_issuer(&issuer).unwrap(),
            client_id: None,
            ca_file: None,
            state_dir: None,
        };
        let Err(error) = Provider::discover(&settings) else {
            panic!("a 2 MiB discovery document was accepted");
        };
        assert_eq!(error.exit_status(), crate::exit::ExitStatus::Other);
        let text = error.to_string();
        assert!(text.contains("larger than 1048576 bytes"), "{text}");
        assert!(text.contains("openid-configuration"), "{text}");
    }
}
