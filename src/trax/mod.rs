//! TRaX platform: session token claims and credentials.

pub mod acquired;
pub mod api;
pub mod credential;
pub mod provider;
pub mod token;
