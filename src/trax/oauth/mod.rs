//! A user's login to TRaX with OAuth 2.0: the authorization code flow with
//! PKCE through the system browser and a loopback redirect, the device
//! authorization grant for machines without a browser, token storage,
//! refresh and logout.
//!
//! The protocol work is done by the `openidconnect` crate (and the
//! `oauth2` crate under it) over the same rustls `reqwest` client as the
//! /v1 client. Tokens never reach logs, messages or process arguments:
//! [`StoredLogin`]'s `Debug` leaves them out, and errors quote only the
//! provider's error code and description.

mod error;
mod flow;
mod provider;
mod redirect;
mod session;
mod settings;
mod store;

pub use error::OAuthError;
pub use flow::{
    browser_login, finish_device_login, refresh, revoke, start_device_login, DevicePrompt,
};
pub use provider::{http_client, Endpoints, Provider};
pub use redirect::CALLBACK_PATH;
pub use session::{UserSession, REFRESH_MARGIN};
pub use settings::{
    check_client_id, check_issuer, OAuthSettings, DEFAULT_ISSUER, DEFAULT_REDIRECT_TIMEOUT, SCOPES,
};
pub use store::{unix_now, StoredLogin, TokenStore, TOKEN_FILE_NAME};
