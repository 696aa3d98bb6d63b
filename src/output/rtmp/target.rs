//! Destination and credentials of an RTMP publish, as the `connect`
//! command's app and tcUrl and the `publish` command's stream name carry
//! them.
//!
//! A stream path such as `inputs/rtmp-<uuid>` splits at its last `/` into
//! the app (`inputs`) and the stream name (`rtmp-<uuid>`). TRaX documents
//! the credentials as URL userinfo, `rtmp://trax:<jwt>@host:1935/<path>`,
//! but RTMP has no field for userinfo, so `Placement` decides where they go:
//! into the tcUrl, as TRaX documents, or into the stream name's query
//! (`?user=trax&pass=<jwt>`), which MediaMTX also reads. A stream key goes
//! in as both user and password.

use crate::config::Secret;
use crate::trax::credential::Credential;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt;
use std::str::FromStr;

/// User name that marks the password as a session token.
pub const TOKEN_USER: &str = "trax";

/// Maximum length of an AMF0 string, which carries the tcUrl and the
/// stream name, in bytes.
pub const MAX_AMF0_STRING_BYTES: usize = u16::MAX as usize;

/// Bytes left as they are in userinfo and query values: the URL
/// "unreserved" set. Everything else is percent-encoded, so a `:`, `@`,
/// `&` or `+` in a stream key cannot change how a server splits the URL.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Location of the credentials in the commands, since RTMP has no userinfo
/// field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// In the tcUrl of `connect`, as `scheme://user:pass@host:port/app`.
    #[default]
    Tcurl,
    /// In the stream name of `publish`, as `name?user=…&pass=…`.
    Query,
    /// In both places.
    Both,
}

impl Placement {
    fn in_tc_url(self) -> bool {
        matches!(self, Self::Tcurl | Self::Both)
    }

    fn in_query(self) -> bool {
        matches!(self, Self::Query | Self::Both)
    }
}

impl FromStr for Placement {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "tcurl" => Ok(Self::Tcurl),
            "query" => Ok(Self::Query),
            "both" => Ok(Self::Both),
            _ => Err(TargetError::UnknownPlacement {
                value: text.to_string(),
            }),
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcurl => "tcurl",
            Self::Query => "query",
            Self::Both => "both",
        })
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("invalid RTMP credential placement '{value}': use tcurl, query or both")]
    UnknownPlacement { value: String },

    #[error(
        "the RTMP path '{path}' has no '/': RTMP needs an app and a stream name, as in \
         'inputs/rtmp-<uuid>'"
    )]
    NoSlash { path: String },

    #[error(
        "the RTMP path {path:?} contains {character:?}: use only letters A-Z a-z, digits, '_', \
         '.', '-' and '/'"
    )]
    InvalidPathCharacter { path: String, character: char },

    #[error(
        "the RTMP path '{path}' has an empty, '.' or '..' segment: give the provisioned path \
         exactly, as in 'inputs/rtmp-<uuid>'"
    )]
    BadPathSegment { path: String },

    #[error("the {kind} is empty: set it, or publish with the other kind of credential")]
    EmptyCredential { kind: &'static str },

    #[error(
        "the RTMP {field} would be {length_bytes} bytes, over the {MAX_AMF0_STRING_BYTES}-byte \
         limit of an AMF0 string: use a shorter {kind}"
    )]
    TooLong {
        field: &'static str,
        length_bytes: usize,
        kind: &'static str,
    },
}

/// The app and stream name a path splits into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamTarget {
    pub app: String,
    pub stream_name: String,
}

/// Splits `path` at its last `/` into app and stream name, after checking
/// that it has only the characters TRaX paths use.
pub fn split_path(path: &str) -> Result<StreamTarget, TargetError> {
    if let Some(character) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/')))
    {
        return Err(TargetError::InvalidPathCharacter {
            path: path.to_string(),
            character,
        });
    }
    let Some((app, stream_name)) = path.rsplit_once('/') else {
        return Err(TargetError::NoSlash {
            path: path.to_string(),
        });
    };
    if path
        .split('/')
        .any(|segment| matches!(segment, "" | "." | ".."))
    {
        return Err(TargetError::BadPathSegment {
            path: path.to_string(),
        });
    }
    Ok(StreamTarget {
        app: app.to_string(),
        stream_name: stream_name.to_string(),
    })
}

/// Percent-encodes `value` for a URL's userinfo or query: every byte but
/// letters, digits, `-`, `.`, `_` and `~`.
pub fn encode_component(value: &str) -> String {
    utf8_percent_encode(value, COMPONENT).to_string()
}

/// Names that the `connect` and `publish` commands carry. At least one of
/// the two strings contains the credential, so both are secrets.
#[derive(Clone, Debug)]
pub struct PublishNames {
    pub app: String,
    /// The stream name without credentials, for logs.
    pub stream_name: String,
    pub tc_url: Secret,
    /// The stream name as `publish` sends it, with the query when the
    /// placement puts the credentials there.
    pub publish_name: Secret,
}

/// Destination of the connection: scheme, host and port.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint<'a> {
    pub tls: bool,
    pub host: &'a str,
    pub port: u16,
}

impl Endpoint<'_> {
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "rtmps"
        } else {
            "rtmp"
        }
    }

    /// Returns `host:port`, with an IPv6 address in brackets.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Builds the tcUrl and the publish name for `path` with `credential`,
/// placed according to `placement`.
pub fn publish_names(
    endpoint: Endpoint<'_>,
    path: &str,
    credential: &Credential,
    placement: Placement,
) -> Result<PublishNames, TargetError> {
    let target = split_path(path)?;
    let secret = credential.secret();
    if secret.is_empty() {
        return Err(TargetError::EmptyCredential {
            kind: credential.kind(),
        });
    }
    let user = match credential {
        Credential::SessionToken(_) => TOKEN_USER,
        Credential::StreamKey(key) => key.expose(),
    };
    let user = encode_component(user);
    let password = encode_component(secret.expose());

    let userinfo = if placement.in_tc_url() {
        format!("{user}:{password}@")
    } else {
        String::new()
    };
    let tc_url = format!(
        "{}://{userinfo}{}/{}",
        endpoint.scheme(),
        endpoint.authority(),
        target.app
    );
    let publish_name = if placement.in_query() {
        format!("{}?user={user}&pass={password}", target.stream_name)
    } else {
        target.stream_name.clone()
    };

    for (field, value) in [("tcUrl", &tc_url), ("publish name", &publish_name)] {
        if value.len() > MAX_AMF0_STRING_BYTES {
            return Err(TargetError::TooLong {
                field,
                length_bytes: value.len(),
                kind: credential.kind(),
            });
        }
    }
    Ok(PublishNames {
        app: target.app,
        stream_name: target.stream_name,
        tc_url: Secret::new("RTMP tcUrl", tc_url),
        publish_name: Secret::new("RTMP publish name", publish_name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJwYXRoIjoiaW5wdXRzIn0.c2ln-_";

    fn token() -> Credential {
        Credential::SessionToken(Secret::new("session token", TOKEN))
    }

    fn key(value: &str) -> Credential {
        Credential::StreamKey(Secret::new("stream key", value))
    }

    fn endpoint(tls: bool, host: &str) -> Endpoint<'_> {
        Endpoint {
            tls,
            host,
            port: if tls { 1936 } else { 1935 },
        }
    }

    #[test]
    fn split_path_at_last_slash() {
        let cases = [
            ("inputs/rtmp-1234", "inputs", "rtmp-1234"),
            ("live/cam1", "live", "cam1"),
            ("a/b/c", "a/b", "c"),
            ("inputs/rtmp-4f9a.v2_x", "inputs", "rtmp-4f9a.v2_x"),
        ];
        for (path, app, stream_name) in cases {
            let target = split_path(path).unwrap();
            assert_eq!(target.app, app, "{path}");
            assert_eq!(target.stream_name, stream_name, "{path}");
        }
    }

    #[test]
    fn split_path_rejects_bad_paths() {
        let cases = [
            ("rtmp-1234", "has no '/'"),
            ("", "has no '/'"),
            ("/rtmp-1234", "empty, '.' or '..' segment"),
            ("inputs/", "empty, '.' or '..' segment"),
            ("inputs//x", "empty, '.' or '..' segment"),
            ("../x", "empty, '.' or '..' segment"),
            ("inputs/a b", "contains ' '"),
            ("inputs/x?y", "contains '?'"),
            ("inputs/x%20", "contains '%'"),
            ("inputs/x:y", "contains ':'"),
            ("inputs/ünï", "contains 'ü'"),
        ];
        for (path, expected) in cases {
            let error = split_path(path).unwrap_err().to_string();
            assert!(error.contains(expected), "{path}: {error}");
        }
    }

    #[test]
    fn placement_parses_its_names() {
        for placement in [Placement::Tcurl, Placement::Query, Placement::Both] {
            assert_eq!(placement.to_string().parse::<Placement>(), Ok(placement));
        }
        assert_eq!(Placement::default(), Placement::Tcurl);
        let error = "TCURL".parse::<Placement>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid RTMP credential placement 'TCURL': use tcurl, query or both"
        );
    }

    #[test]
    fn names_for_each_placement_and_credential() {
        let path = "inputs/rtmp-1234";
        let cases = [
            (
                Placement::Tcurl,
                token(),
                format!("rtmp://trax:{TOKEN}@edge.example:1935/inputs"),
                "rtmp-1234".to_string(),
            ),
            (
                Placement::Query,
                token(),
                "rtmp://edge.example:1935/inputs".to_string(),
                format!("rtmp-1234?user=trax&pass={TOKEN}"),
            ),
            (
                Placement::Both,
                token(),
                format!("rtmp://trax:{TOKEN}@edge.example:1935/inputs"),
                format!("rtmp-1234?user=trax&pass={TOKEN}"),
            ),
            (
                Placement::Tcurl,
                key("sk_4f9a"),
                "rtmp://sk_4f9a:sk_4f9a@edge.example:1935/inputs".to_string(),
                "rtmp-1234".to_string(),
            ),
            (
                Placement::Query,
                key("sk_4f9a"),
                "rtmp://edge.example:1935/inputs".to_string(),
                "rtmp-1234?user=sk_4f9a&pass=sk_4f9a".to_string(),
            ),
            (
                Placement::Both,
                key("a:b@c/d?e&f+g h"),
                "rtmp://a%3Ab%40c%2Fd%3Fe%26f%2Bg%20h:a%3Ab%40c%2Fd%3Fe%26f%2Bg%20h@edge.example:\
                 1935/inputs"
                    .to_string(),
                "rtmp-1234?user=a%3Ab%40c%2Fd%3Fe%26f%2Bg%20h&pass=a%3Ab%40c%2Fd%3Fe%26f%2Bg%20h"
                    .to_string(),
            ),
        ];
        for (placement, credential, tc_url, publish_name) in cases {
            let names = publish_names(
                endpoint(false, "edge.example"),
                path,
                &credential,
                placement,
            )
            .unwrap();
            assert_eq!(names.tc_url.expose(), tc_url, "{placement}");
            assert_eq!(names.publish_name.expose(), publish_name, "{placement}");
            assert_eq!(names.app, "inputs");
            assert_eq!(names.stream_name, "rtmp-1234");
        }
    }

    #[test]
    fn tc_url_scheme_and_host_forms() {
        let cases = [
            (
                endpoint(true, "edge.example"),
                "rtmps://edge.example:1936/live",
            ),
            (endpoint(false, "127.0.0.1"), "rtmp://127.0.0.1:1935/live"),
            (endpoint(false, "::1"), "rtmp://[::1]:1935/live"),
        ];
        for (endpoint, expected) in cases {
            let names =
                publish_names(endpoint, "live/cam1", &key("k3y"), Placement::Query).unwrap();
            assert_eq!(names.tc_url.expose(), expected);
        }
    }

    #[test]
    fn names_are_redacted_secrets() {
        let names = publish_names(
            endpoint(false, "edge.example"),
            "inputs/rtmp-1234",
            &token(),
            Placement::Both,
        )
        .unwrap();
        let formatted = format!("{names:?} {} {}", names.tc_url, names.publish_name);
        assert!(!formatted.contains(TOKEN), "{formatted}");
        assert!(formatted.contains("rtmp-1234"), "{formatted}");
    }

    #[test]
    fn names_reject_empty_or_oversized_credentials() {
        let empty = publish_names(
            endpoint(false, "h"),
            "live/cam1",
            &key(""),
            Placement::Tcurl,
        )
        .unwrap_err();
        assert_eq!(empty, TargetError::EmptyCredential { kind: "stream key" });

        let long = "k".repeat(MAX_AMF0_STRING_BYTES);
        let too_long = publish_names(
            endpoint(false, "h"),
            "live/cam1",
            &key(&long),
            Placement::Query,
        )
        .unwrap_err();
        assert!(
            matches!(
                too_long,
                TargetError::TooLong {
                    field: "publish name",
                    ..
                }
            ),
            "{too_long:?}"
        );
        assert!(!too_long.to_string().contains(&long));
    }
}
