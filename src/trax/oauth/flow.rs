//! The OAuth 2.0 exchanges, through the `openidconnect` crate: the
//! authorization code flow with PKCE, the device authorization grant,
//! refresh and revocation.

use super::error::{excerpt, OAuthError};
use super::provider::{transport_error, Endpoints, LimitedClient, Provider};
use super::redirect::RedirectListener;
use super::settings::SCOPES;
use super::store::{unix_now, StoredLogin};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreDeviceAuthorizationResponse, CoreIdTokenClaims,
    CoreRevocableToken, CoreTokenResponse,
};
use openidconnect::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, DeviceAuthorizationUrl, EndpointNotSet,
    EndpointSet, HttpClientError, JsonWebKeySet, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    RedirectUrl, RefreshToken, RequestTokenError, RevocationUrl, Scope, TokenResponse, TokenUrl,
};
use std::fmt::Display;
use std::time::Duration;
use tracing::debug;

type BaseClient =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The device authorization response's fields shown to the user.
#[derive(Debug)]
pub struct DevicePrompt {
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub user_code: String,
    pub expires_in: Duration,
    pub interval: Duration,
}

fn base_client(endpoints: &Endpoints, client_id: &str) -> BaseClient {
    let jwks = endpoints
        .jwks
        .clone()
        .unwrap_or_else(|| JsonWebKeySet::new(Vec::new()));
    CoreClient::new(
        ClientId::new(client_id.to_string()),
        endpoints.issuer.clone(),
        jwks,
    )
    .set_auth_uri(AuthUrl::from_url(endpoints.authorization.clone()))
    .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
}

/// Runs the authorization code flow with PKCE (S256): binds the loopback
/// redirect, hands the authorization URL to `open_browser`, waits for the
/// redirect, checks its state and exchanges the code.
pub fn browser_login(
    provider: &Provider,
    client_id: &str,
    open_browser: &dyn Fn(&str),
    timeout: Duration,
) -> Result<StoredLogin, OAuthError> {
    let listener = RedirectListener::bind()?;
    let redirect = RedirectUrl::new(listener.redirect_uri().to_string())
        .map_err(|error| OAuthError::Listener(format!("invalid redirect URI: {error}")))?;
    let client = base_client(&provider.endpoints, client_id).set_redirect_uri(redirect);

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scopes(extra_scopes())
        .set_pkce_challenge(challenge)
        .url();
    open_browser(url.as_str());

    let issuer = provider.endpoints.issuer.as_str();
    let code = listener.wait_for_code(state.secret(), issuer, timeout)?;
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request(&provider.http)
        .map_err(|error| token_error("the authorization code exchange", error))?;
    stored_login(provider, client_id, &response, Some(&nonce))
}

/// Starts the device authorization grant (RFC 8628).
pub fn start_device_login(
    provider: &Provider,
    client_id: &str,
) -> Result<(CoreDeviceAuthorizationResponse, DevicePrompt), OAuthError> {
    let Some(endpoint) = &provider.endpoints.device_authorization else {
        return Err(OAuthError::NoDeviceFlow {
            issuer: provider.endpoints.issuer.to_string(),
        });
    };
    let client = base_client(&provider.endpoints, client_id)
        .set_device_authorization_url(DeviceAuthorizationUrl::from_url(endpoint.clone()));
    let details: CoreDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scopes(extra_scopes())
        .request(&provider.http)
        .map_err(|error| {
            let operation = format!("the device authorization request of client '{client_id}'");
            token_error(&operation, error)
        })?;
    let prompt = DevicePrompt {
        verification_uri: details.verification_uri().to_string(),
        verification_uri_complete: details
            .verification_uri_complete()
            .map(|uri| uri.secret().to_string()),
        user_code: details.user_code().secret().to_string(),
        expires_in: details.expires_in(),
        interval: details.interval(),
    };
    Ok((details, prompt))
}

/// Polls the token endpoint at the given interval (5 s more after each
/// `slow_down`) until the user approves, denies or the code expires.
pub fn finish_device_login(
    provider: &Provider,
    client_id: &str,
    details: &CoreDeviceAuthorizationResponse,
) -> Result<StoredLogin, OAuthError> {
    let client = base_client(&provider.endpoints, client_id);
    let response = client
        .exchange_device_access_token(details)
        .request(&provider.http, std::thread::sleep, None)
        .map_err(|error| match error {
            RequestTokenError::ServerResponse(response) => match response.error().as_ref() {
                "expired_token" => OAuthError::DeviceCodeExpired,
                "access_denied" => OAuthError::DeviceAccessDenied,
                code => OAuthError::Rejected {
                    operation: "the device login".into(),
                    code: code.to_string(),
                    description: description(response.error_description()),
                },
            },
            other => token_error("the device login", other),
        })?;
    stored_login(provider, client_id, &response, None)
}

/// Exchanges the stored refresh token for a new access token, keeping
/// the old refresh token when the provider sends no new one.
pub fn refresh(http: &LimitedClient, login: &StoredLogin) -> Result<StoredLogin, OAuthError> {
    let refresh_token = login
        .refresh_token
        .as_ref()
        .ok_or_else(|| OAuthError::RefreshFailed {
            reason: "the provider issued no refresh token".into(),
        })?;
    let token_url =
        TokenUrl::new(login.token_endpoint.clone()).map_err(|error| OAuthError::RefreshFailed {
            reason: format!("the stored token endpoint is invalid ({error})"),
        })?;
    let client = oauth2_client(&login.client_id).set_token_uri(token_url);
    let response = client
        .exchange_refresh_token(&RefreshToken::new(refresh_token.clone()))
        .request(http)
        .map_err(|error| match error {
            RequestTokenError::ServerResponse(response) => OAuthError::RefreshFailed {
                reason: format!(
                    "the identity provider returned {}{}",
                    response.error().as_ref(),
                    description(response.error_description())
                ),
            },
            other => token_error("the token refresh", other),
        })?;
    let mut refreshed = login.clone();
    refreshed.access_token = response.access_token().secret().clone();
    refreshed.expires_at = response.expires_in().map(|ttl| unix_now() + ttl.as_secs());
    if let Some(token) = response.refresh_token() {
        refreshed.refresh_token = Some(token.secret().clone());
    }
    Ok(refreshed)
}

/// Revokes the stored refresh token (RFC 7009), which at most providers
/// also ends the access tokens issued with it. Returns whether the
/// provider offers revocation.
pub fn revoke(http: &LimitedClient, login: &StoredLogin) -> Result<bool, OAuthError> {
    let Some(endpoint) = &login.revocation_endpoint else {
        return Ok(false);
    };
    // oauth2 sends revocation requests over https only, as RFC 7009 requires
    // TLS, so a plain-http endpoint (a loopback test provider) gets a clear
    // error in place of the crate's.
    if !endpoint.starts_with("https://") {
        return Err(OAuthError::InvalidResponse {
            operation: "the revocation".into(),
            reason: format!(
                "the revocation endpoint {endpoint} is not https, and tokens are revoked \
                 over https only"
            ),
        });
    }
    let url =
        RevocationUrl::new(endpoint.clone()).map_err(|error| OAuthError::InvalidResponse {
            operation: "the revocation".into(),
            reason: format!("the stored revocation endpoint is invalid ({error})"),
        })?;
    let token = match &login.refresh_token {
        Some(refresh) => CoreRevocableToken::from(RefreshToken::new(refresh.clone())),
        None => {
            CoreRevocableToken::from(openidconnect::AccessToken::new(login.access_token.clone()))
        }
    };
    let client = oauth2_client(&login.client_id).set_revocation_url(url);
    client
        .revoke_token(token)
        .map_err(|error| OAuthError::InvalidResponse {
            operation: "the revocation".into(),
            reason: error.to_string(),
        })?
        .request(http)
        .map_err(|error| match error {
            RequestTokenError::ServerResponse(response) => OAuthError::Rejected {
                operation: "the revocation".into(),
                code: response.error().to_string(),
                description: description(response.error_description()),
            },
            other => token_error("the revocation", other),
        })?;
    Ok(true)
}

fn oauth2_client(client_id: &str) -> openidconnect::core::CoreClient {
    CoreClient::new(
        ClientId::new(client_id.to_string()),
        openidconnect::IssuerUrl::new("http://127.0.0.1/".into()).expect("a valid URL"),
        JsonWebKeySet::new(Vec::new()),
    )
}

fn extra_scopes() -> Vec<Scope> {
    SCOPES
        .iter()
        .filter(|scope| **scope != "openid")
        .map(|scope| Scope::new(scope.to_string()))
        .collect()
}

/// Builds the stored login from a token response, with the user's name and
/// email from the ID token once its signature, issuer, audience, expiry
/// and (for the browser flow) nonce are verified.
fn stored_login(
    provider: &Provider,
    client_id: &str,
    response: &CoreTokenResponse,
    nonce: Option<&Nonce>,
) -> Result<StoredLogin, OAuthError> {
    let endpoints = &provider.endpoints;
    let mut login = StoredLogin {
        issuer: endpoints.issuer.to_string(),
        client_id: client_id.to_string(),
        token_endpoint: endpoints.token.to_string(),
        revocation_endpoint: endpoints.revocation.as_ref().map(ToString::to_string),
        end_session_endpoint: endpoints.end_session.as_ref().map(ToString::to_string),
        ca_file: None,
        access_token: response.access_token().secret().clone(),
        refresh_token: response.refresh_token().map(|token| token.secret().clone()),
        expires_at: response.expires_in().map(|ttl| unix_now() + ttl.as_secs()),
        subject: None,
        name: None,
        email: None,
    };

    let Some(id_token) = response.id_token() else {
        return Ok(login);
    };
    if endpoints.jwks.is_none() {
        debug!("no signing keys without discovery; the ID token's claims are not used");
        return Ok(login);
    }

    let client = base_client(endpoints, client_id);
    let verifier = client.id_token_verifier();
    let claims: &CoreIdTokenClaims = match nonce {
        Some(nonce) => id_token.claims(&verifier, nonce),
        None => id_token.claims(&verifier, |_: Option<&Nonce>| Ok(())),
    }
    .map_err(|error| OAuthError::InvalidResponse {
        operation: "the token response".into(),
        reason: format!("the ID token failed to verify ({error})"),
    })?;

    login.subject = Some(claims.subject().to_string());
    login.email = claims.email().map(|email| email.to_string());
    login.name = claims
        .name()
        .and_then(|name| name.get(None))
        .map(|name| name.to_string())
        .or_else(|| claims.preferred_username().map(|name| name.to_string()));
    Ok(login)
}

fn description(text: Option<&String>) -> String {
    match text {
        Some(text) if !text.is_empty() => format!(" ({})", excerpt(text, 200)),
        _ => String::new(),
    }
}

/// Returns the error for a failed token-endpoint request.
fn token_error<T: openidconnect::ErrorResponse + Display + 'static>(
    operation: &str,
    error: RequestTokenError<HttpClientError<reqwest::Error>, T>,
) -> OAuthError {
    match error {
        RequestTokenError::ServerResponse(response) => {
            let (code, description) = split_error(&response.to_string());
            OAuthError::Rejected {
                operation: operation.to_string(),
                code,
                description,
            }
        }
        RequestTokenError::Request(error) => transport_error(operation.to_string(), &error),
        RequestTokenError::Parse(error, _) => {
            // The body and serde's message may quote a token, so only the
            // field's path is shown.
            OAuthError::InvalidResponse {
                operation: operation.to_string(),
                reason: format!("not a valid OAuth response (at field '{}')", error.path()),
            }
        }
        RequestTokenError::Other(reason) => OAuthError::InvalidResponse {
            operation: operation.to_string(),
            reason,
        },
    }
}

/// Splits a standard error response's text, `code: description`.
fn split_error(text: &str) -> (String, String) {
    match text.split_once(": ") {
        Some((code, rest)) => (excerpt(code, 64), format!(" ({})", excerpt(rest, 200))),
        None => (excerpt(text, 64), String::new()),
    }
}
