//! TRaX platform: session token claims and credentials.
