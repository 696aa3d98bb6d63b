//! Bearer token checks of the webrtcbin WHIP receiver, written apart from
//! the bridge's own claim checks so that a mistake in those cannot hide
//! itself here.
//!
//! The JWKS check verifies an ES256 compact JWS with the key its `kid`
//! names. Then it checks the claims of the /v1 stand-in's WHIP tokens: `aud`
//! contains the audience, `action` is `publish` and `path` is the stream
//! path. `exp` must not have passed, and `can_publish`, when present, must
//! be true. The JWKS is fetched at start and again when a token names a
//! `kid` it lacks.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bridge::config::Secret;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The audience of WHIP tokens that the /v1 stand-in issues.
pub const WHIP_AUDIENCE: &str = "trax-mediamtx-talk";

const JWKS_TIMEOUT: Duration = Duration::from_secs(2);
const P256_COORDINATE_BYTES: usize = 32;

/// How the receiver decides on a request's Bearer token.
pub enum TokenPolicy {
    /// ES256 tokens verified with the JWKS at this URL, with WHIP claims.
    Jwks { url: String, audience: String },
    /// Exactly this token.
    Fixed(Secret),
    /// Every request, with or without a token.
    Any,
}

pub struct TokenCheck {
    policy: TokenPolicy,
    /// Uncompressed P-256 points (`04 || x || y`) by `kid`.
    keys: Mutex<HashMap<String, Vec<u8>>>,
}

impl TokenCheck {
    /// Builds the check and, for a JWKS policy, fetches the JWKS once.
    pub fn new(policy: TokenPolicy) -> Result<Self, String> {
        let check = Self {
            policy,
            keys: Mutex::default(),
        };
        if let TokenPolicy::Jwks { url, .. } = &check.policy {
            *check.keys.lock().unwrap() = fetch_jwks(url)?;
        }
        Ok(check)
    }

    /// Returns why `token` may not publish on `path`, or `None` when it may.
    /// The reason never contains the token.
    pub fn reject_reason(&self, token: Option<&str>, path: &str) -> Option<String> {
        match &self.policy {
            TokenPolicy::Any => None,
            TokenPolicy::Fixed(expected) => match token {
                None => Some("Authorization: Bearer token missing".to_string()),
                Some(token) if token == expected.expose() => None,
                Some(_) => Some("token does not match the expected token".to_string()),
            },
            TokenPolicy::Jwks { url, audience } => {
                let Some(token) = token else {
                    return Some("Authorization: Bearer token missing".to_string());
                };
                self.check_jws(url, audience, token, path).err()
            }
        }
    }

    fn check_jws(&self, url: &str, audience: &str, token: &str, path: &str) -> Result<(), String> {
        let parts: Vec<&str> = token.split('.').collect();
        if parts.len() != 3 {
            return Err(format!("token has {} parts, not 3", parts.len()));
        }
        let header = decode_json(parts[0], "header")?;
        let claims = decode_json(parts[1], "payload")?;
        if header["alg"] != "ES256" {
            return Err(format!("token alg {} is not \"ES256\"", header["alg"]));
        }
        let Some(kid) = header["kid"].as_str() else {
            return Err("token header names no kid".to_string());
        };

        let key = self.key_for(url, kid)?;
        let signature = URL_SAFE_NO_PAD
            .decode(parts[2])
            .map_err(|_| "token signature is not base64url".to_string())?;
        let signing_input = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &key)
            .verify(signing_input.as_bytes(), &signature)
            .map_err(|_| format!("token signature does not verify with JWKS key {kid:?}"))?;

        check_claims(&claims, path, audience, SystemTime::now())
    }

    fn key_for(&self, url: &str, kid: &str) -> Result<Vec<u8>, String> {
        if let Some(key) = self.keys.lock().unwrap().get(kid) {
            return Ok(key.clone());
        }
        let fetched = fetch_jwks(url)?;
        let key = fetched.get(kid).cloned();
        *self.keys.lock().unwrap() = fetched;
        key.ok_or_else(|| {
            format!("token kid {kid:?} is not in the JWKS, also after fetching it again")
        })
    }
}

/// Checks the WHIP publish claims of a verified token at time `now`.
pub fn check_claims(
    claims: &Value,
    path: &str,
    audience: &str,
    now: SystemTime,
) -> Result<(), String> {
    let audience_matches = match &claims["aud"] {
        Value::String(entry) => entry == audience,
        Value::Array(entries) => entries.iter().any(|entry| entry == audience),
        _ => false,
    };
    if !audience_matches {
        return Err(format!("claim aud {} lacks {audience:?}", claims["aud"]));
    }
    if claims["action"] != "publish" {
        return Err(format!(
            "claim action {} is not \"publish\"",
            claims["action"]
        ));
    }
    if claims["path"] != path {
        return Err(format!("claim path {} is not {path:?}", claims["path"]));
    }
    if !claims["can_publish"].is_null() && claims["can_publish"] != true {
        return Err(format!("claim can_publish is {}", claims["can_publish"]));
    }
    if let Some(expiry) = claims.get("exp").filter(|expiry| !expiry.is_null()) {
        let Some(expires_unix_s) = expiry.as_f64() else {
            return Err("claim exp is not a number".to_string());
        };
        let now_unix_s = now.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
        if now_unix_s >= expires_unix_s {
            return Err(format!(
                "token expired {:.0} s ago",
                now_unix_s - expires_unix_s
            ));
        }
    }
    Ok(())
}

fn decode_json(part: &str, name: &str) -> Result<Value, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| format!("token {name} is not base64url"))?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|_| format!("token {name} is not JSON"))?;
    if !value.is_object() {
        return Err(format!("token {name} is not a JSON object"));
    }
    Ok(value)
}

/// Fetches the JWKS and returns its ES256 signing keys by `kid`, skipping
/// keys of other types.
fn fetch_jwks(url: &str) -> Result<HashMap<String, Vec<u8>>, String> {
    let document: Value = reqwest::blocking::Client::builder()
        .timeout(JWKS_TIMEOUT)
        .build()
        .and_then(|client| client.get(url).send())
        .and_then(|response| response.error_for_status())
        .and_then(|response| response.json())
        .map_err(|error| format!("fetching the JWKS from {url} failed: {error}"))?;
    let Some(entries) = document["keys"].as_array() else {
        return Err(format!("the JWKS at {url} has no \"keys\" list"));
    };
    Ok(entries.iter().filter_map(p256_key).collect())
}

fn p256_key(jwk: &Value) -> Option<(String, Vec<u8>)> {
    let usable = jwk["kty"] == "EC"
        && jwk["crv"] == "P-256"
        && (jwk["alg"].is_null() || jwk["alg"] == "ES256")
        && (jwk["use"].is_null() || jwk["use"] == "sig");
    if !usable {
        return None;
    }
    let mut point = vec![0x04];
    for name in ["x", "y"] {
        let coordinate = URL_SAFE_NO_PAD.decode(jwk[name].as_str()?).ok()?;
        if coordinate.len() != P256_COORDINATE_BYTES {
            return None;
        }
        point.extend_from_slice(&coordinate);
    }
    Some((jwk["kid"].as_str()?.to_string(), point))
}
