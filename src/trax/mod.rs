//! TRaX platform: session token claims, credentials and the user login.

pub mod acquired;
pub mod api;
pub mod credential;
pub mod oauth;
pub mod provider;
pub mod token;
