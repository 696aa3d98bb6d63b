//! The SRT streamid the TRaX edge (MediaMTX) reads: `publish:<path>:<user>:<pass>`,
//! with `trax` as user and the session token as password, or the stream key
//! as both.
//!
//! The edge splits the streamid on `:`, so no field may contain one, and
//! libsrt caps a streamid at 512 bytes. Both are checked here, before
//! dialing, so a streamid the edge would misread never leaves the machine.

use crate::config::Secret;
use crate::trax::credential::Credential;

/// Maximum streamid length libsrt accepts (`SRTO_STREAMID`), in bytes.
pub const MAX_STREAMID_BYTES: usize = 512;

/// User name that marks the password field as a session token.
pub const TOKEN_USER: &str = "trax";

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    #[error("the SRT path is empty: set the path the stream publishes to, as in 'live/cam1'")]
    EmptyPath,

    #[error(
        "the SRT path '{path}' contains ':', which separates streamid fields: remove it from \
         the path"
    )]
    ColonInPath { path: String },

    #[error(
        "the SRT path {path:?} contains {character:?}: use only letters A-Z a-z, digits, '_', \
         '.', '-' and '/'"
    )]
    InvalidPathCharacter { path: String, character: char },

    #[error(
        "the SRT path '{path}' has an empty, '.' or '..' segment: give the provisioned path \
         exactly, as in 'inputs/srt-<uuid>'"
    )]
    BadPathSegment { path: String },

    #[error("the SRT path '{path}' starts or ends with '/': remove the leading or trailing '/'")]
    SlashAtEdge { path: String },

    #[error("the {kind} is empty: set it, or publish with the other kind of credential")]
    EmptyCredential { kind: &'static str },

    #[error(
        "the {kind} contains ':' at byte {position}, which separates streamid fields: check \
         that the whole {kind} was copied, and nothing else"
    )]
    ColonInCredential { kind: &'static str, position: usize },

    #[error(
        "the SRT streamid would be {length_bytes} bytes, {} over libsrt's \
         {MAX_STREAMID_BYTES}-byte budget: use a shorter path or a shorter {kind}",
        .length_bytes - MAX_STREAMID_BYTES
    )]
    TooLong {
        length_bytes: usize,
        kind: &'static str,
    },
}

/// Builds the streamid for publishing on `path` with `credential`.
pub fn build_streamid(path: &str, credential: &Credential) -> Result<Secret, StreamIdError> {
    check_path(path)?;

    let secret = credential.secret();
    let kind = credential.kind();
    if secret.is_empty() {
        return Err(StreamIdError::EmptyCredential { kind });
    }
    if let Some(position) = secret.expose().find(':') {
        return Err(StreamIdError::ColonInCredential { kind, position });
    }

    let value = match credential {
        Credential::SessionToken(token) => {
            format!("publish:{path}:{TOKEN_USER}:{}", token.expose())
        }
        Credential::StreamKey(key) => {
            format!("publish:{path}:{}:{}", key.expose(), key.expose())
        }
    };
    if value.len() > MAX_STREAMID_BYTES {
        return Err(StreamIdError::TooLong {
            length_bytes: value.len(),
            kind,
        });
    }
    Ok(Secret::new("SRT streamid", value))
}

fn check_path(path: &str) -> Result<(), StreamIdError> {
    if path.is_empty() {
        return Err(StreamIdError::EmptyPath);
    }
    if path.contains(':') {
        return Err(StreamIdError::ColonInPath {
            path: path.to_string(),
        });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/');
    if let Some(character) = path.chars().find(|&c| !allowed(c)) {
        return Err(StreamIdError::InvalidPathCharacter {
            path: path.to_string(),
            character,
        });
    }
    if path.starts_with('/') || path.ends_with('/') {
        return Err(StreamIdError::SlashAtEdge {
            path: path.to_string(),
        });
    }
    if path
        .split('/')
        .any(|segment| matches!(segment, "" | "." | ".."))
    {
        return Err(StreamIdError::BadPathSegment {
            path: path.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(value: &str) -> Credential {
        Credential::SessionToken(Secret::new("session token", value))
    }

    fn key(value: &str) -> Credential {
        Credential::StreamKey(Secret::new("stream key", value))
    }

    #[test]
    fn builds_token_and_key_forms() {
        let streamid = build_streamid("live/cam_1.a-b", &token("aaa.bbb.ccc")).unwrap();
        assert_eq!(streamid.expose(), "publish:live/cam_1.a-b:trax:aaa.bbb.ccc");
        let streamid = build_streamid("live/cam1", &key("k3y")).unwrap();
        assert_eq!(streamid.expose(), "publish:live/cam1:k3y:k3y");
    }

    #[test]
    fn streamid_never_prints_secret() {
        let streamid = build_streamid("live/cam1", &token("aaa.bbb.ccc")).unwrap();
        assert!(!format!("{streamid} {streamid:?}").contains("aaa.bbb"));
    }

    #[test]
    fn accepts_exactly_max_bytes() {
        let prefix = "publish:live/cam1:trax:".len();
        let value = "t".repeat(MAX_STREAMID_BYTES - prefix);
        let streamid = build_streamid("live/cam1", &token(&value)).unwrap();
        assert_eq!(streamid.len(), MAX_STREAMID_BYTES);
    }

    #[test]
    fn rejects_bad_fields() {
        let long_token = "t".repeat(MAX_STREAMID_BYTES);
        let cases = [
            ("", token("a.b.c"), StreamIdError::EmptyPath),
            (
                "live:cam",
                token("a.b.c"),
                StreamIdError::ColonInPath {
                    path: "live:cam".into(),
                },
            ),
            (
                "live/cam 1",
                token("a.b.c"),
                StreamIdError::InvalidPathCharacter {
                    path: "live/cam 1".into(),
                    character: ' ',
                },
            ),
            (
                "live/kamera-ü",
                token("a.b.c"),
                StreamIdError::InvalidPathCharacter {
                    path: "live/kamera-ü".into(),
                    character: 'ü',
                },
            ),
            (
                "live/cam?x=1",
                key("k"),
                StreamIdError::InvalidPathCharacter {
                    path: "live/cam?x=1".into(),
                    character: '?',
                },
            ),
            (
                "/live/cam",
                token("a.b.c"),
                StreamIdError::SlashAtEdge {
                    path: "/live/cam".into(),
                },
            ),
            (
                "live/cam/",
                token("a.b.c"),
                StreamIdError::SlashAtEdge {
                    path: "live/cam/".into(),
                },
            ),
            (
                "inputs/../cam",
                token("a.b.c"),
                StreamIdError::BadPathSegment {
                    path: "inputs/../cam".into(),
                },
            ),
            (
                "inputs//cam",
                token("a.b.c"),
                StreamIdError::BadPathSegment {
                    path: "inputs//cam".into(),
                },
            ),
            (
                "./cam",
                key("k"),
                StreamIdError::BadPathSegment {
                    path: "./cam".into(),
                },
            ),
            (
                "live",
                key(""),
                StreamIdError::EmptyCredential { kind: "stream key" },
            ),
            (
                "live",
                key("ab:cd"),
                StreamIdError::ColonInCredential {
                    kind: "stream key",
                    position: 2,
                },
            ),
            (
                "live",
                token("a.b:c"),
                StreamIdError::ColonInCredential {
                    kind: "session token",
                    position: 3,
                },
            ),
            (
                "live",
                token(&long_token),
                StreamIdError::TooLong {
                    length_bytes: MAX_STREAMID_BYTES + "publish:live:trax:".len(),
                    kind: "session token",
                },
            ),
        ];
        for (path, credential, expected) in cases {
            assert_eq!(
                build_streamid(path, &credential).unwrap_err(),
                expected,
                "{path}"
            );
        }
    }

    #[test]
    fn too_long_names_budget_and_excess() {
        let value = "k".repeat(250);
        let error = build_streamid("live/cam1", &key(&value)).unwrap_err();
        let expected_bytes = "publish:live/cam1::".len() + 500;
        assert_eq!(
            error.to_string(),
            format!(
                "the SRT streamid would be {expected_bytes} bytes, {} over libsrt's 512-byte \
                 budget: use a shorter path or a shorter stream key",
                expected_bytes - 512
            )
        );
        assert!(!error.to_string().contains(&value));
    }
}
