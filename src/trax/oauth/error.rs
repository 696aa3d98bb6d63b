//! Errors of the user login, each with the exit status it maps to.

use crate::exit::ExitStatus;
use std::path::PathBuf;

/// A failed login, logout, refresh or token storage step.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error(
        "no OAuth client id is configured: register this app with TRaX for a native-app client \
         id (with a loopback redirect URI), then give it with --oauth-client-id, \
         TRAX_OAUTH_CLIENT_ID or the config key oauth_client_id"
    )]
    MissingClientId,

    #[error("invalid {setting} '{value}': {fix}")]
    InvalidSetting {
        setting: &'static str,
        value: String,
        fix: String,
    },

    #[error("invalid CA file '{}': {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },

    #[error("cannot reach the identity provider for {operation}: {cause}")]
    Transport { operation: String, cause: String },

    #[error(
        "the identity provider's TLS certificate for {operation} failed to verify: {cause}{hint}"
    )]
    Tls {
        operation: String,
        cause: String,
        hint: &'static str,
    },

    #[error("the identity provider {issuer} offers no device authorization endpoint: use `bridge login` without --device-code (it needs a browser), or log in on a machine that has one and copy the stored login")]
    NoDeviceFlow { issuer: String },

    #[error("invalid response from the identity provider to {operation}: {reason}")]
    InvalidResponse { operation: String, reason: String },

    #[error("login timed out: no redirect from the browser arrived at {redirect_uri} within {seconds} s; run `bridge login` again and finish the login in the browser")]
    RedirectTimedOut { redirect_uri: String, seconds: u64 },

    #[error("login rejected: the redirect's state does not match the one this login sent, so it may come from another site; run `bridge login` again")]
    StateMismatch,

    #[error("login rejected: the redirect names the issuer '{got}', not {expected}, so it may come from another identity provider; run `bridge login` again")]
    IssuerMismatch { expected: String, got: String },

    #[error("the identity provider returned an error to the login: {code}{description}")]
    AuthorizationDenied { code: String, description: String },

    #[error(
        "the identity provider rejected {operation}: {code}{description}{}",
        rejection_fix(code)
    )]
    Rejected {
        operation: String,
        code: String,
        description: String,
    },

    #[error("the device code expired before the login was approved: run `bridge login --device-code` again and enter the new code within its lifetime")]
    DeviceCodeExpired,

    #[error("the login was denied at the identity provider")]
    DeviceAccessDenied,

    #[error("the stored login cannot be refreshed ({reason}): run `bridge login` again")]
    RefreshFailed { reason: String },

    #[error("the access token could not be refreshed ({cause}); the stored login is kept: try again once the identity provider answers")]
    RefreshUnavailable { cause: String },

    #[error(
        "not logged in: run `bridge login`, or give an API key with TRAX_API_KEY or --api-key-file"
    )]
    NotLoggedIn,

    #[error("the token file {} is readable or writable by other users (mode {mode:o}): run `chmod 600 {}`, or delete it and run `bridge login` again", path.display(), path.display())]
    LoosePermissions { path: PathBuf, mode: u32 },

    #[error("the token file {} is owned by uid {owner}, not by this user (uid {user}): delete it and run `bridge login` again, or run `chown {user} {}` if that login is yours", path.display(), path.display())]
    ForeignOwner {
        path: PathBuf,
        owner: u32,
        user: u32,
    },

    #[error("cannot use the token file {}: {reason}", path.display())]
    TokenFile { path: PathBuf, reason: String },

    #[error("invalid state directory {}: {reason}", path.display())]
    StateDir { path: PathBuf, reason: String },

    #[error("the state directory {} is writable by other users (mode {mode:o}), so they could replace the stored login: run `chmod 700 {}`, or give --state-dir another directory", path.display(), path.display())]
    LooseStateDir { path: PathBuf, mode: u32 },

    #[error("cannot read the login from the system keystore ({cause}): {fix}")]
    Keystore { cause: String, fix: &'static str },

    #[error("cannot listen for the login redirect on 127.0.0.1: {0}")]
    Listener(String),
}

impl OAuthError {
    /// Returns the exit status: 2 for settings, 3 for rejected or expired
    /// credentials, 1 for the rest.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            Self::MissingClientId
            | Self::InvalidSetting { .. }
            | Self::CaFile { .. }
            | Self::NoDeviceFlow { .. }
            | Self::LoosePermissions { .. }
            | Self::ForeignOwner { .. }
            | Self::StateDir { .. }
            | Self::LooseStateDir { .. } => ExitStatus::Usage,
            Self::StateMismatch
            | Self::IssuerMismatch { .. }
            | Self::AuthorizationDenied { .. }
            | Self::Rejected { .. }
            | Self::DeviceCodeExpired
            | Self::DeviceAccessDenied
            | Self::RefreshFailed { .. }
            | Self::NotLoggedIn => ExitStatus::Credentials,
            Self::Transport { .. }
            | Self::Tls { .. }
            | Self::InvalidResponse { .. }
            | Self::RedirectTimedOut { .. }
            | Self::RefreshUnavailable { .. }
            | Self::TokenFile { .. }
            | Self::Keystore { .. }
            | Self::Listener(_) => ExitStatus::Other,
        }
    }
}

/// Returns what to do about a standard OAuth error code (RFC 6749 section
/// 5.2), or nothing for codes without a fix the user can make.
fn rejection_fix(code: &str) -> &'static str {
    match code {
        "invalid_client" | "unauthorized_client" => {
            ": check that the client id is the one TRaX registered for this app \
             (--oauth-client-id, TRAX_OAUTH_CLIENT_ID or oauth_client_id)"
        }
        "invalid_scope" => ": ask the TRaX team to allow the scopes openid, profile and email",
        _ => "",
    }
}

/// Returns `text` cut to `max` characters and without control characters,
/// for server text quoted in a message.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match cleaned.char_indices().nth(max) {
        Some((index, _)) => format!("{}…", &cleaned[..index]),
        None => cleaned,
    }
}
