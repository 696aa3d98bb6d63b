//! The operations the bridge relies on, and the check of the live OpenAPI
//! document (`GET /v1/openapi.json`) for each of them.
//!
//! ASSUMED (see `docs/v1-api.md`): `GET /v1/sources` and the credential
//! call are not in the public copy of the spec. If the live API differs,
//! [`REQUIRED_OPERATIONS`] changes here, together with `acquire.rs`.
//!
//! A spec may write its paths with the `/v1` prefix or without it, moving
//! the prefix into `servers[].url` (OpenAPI 3) or `basePath` (Swagger 2),
//! and may name path parameters differently (`{id}` for `{sourceId}`).
//! Paths are compared with the prefix removed and every parameter taken as
//! equal.

use super::error::ApiError;
use super::transport::Request;
use super::ApiClient;
use serde_json::Value;
use std::fmt;

/// One HTTP operation, with its path as `docs/v1-api.md` writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// The spec document itself, which the check fetches.
const OPENAPI_OPERATION: Operation = Operation {
    method: "GET",
    path: "/v1/openapi.json",
};

/// Every operation the bridge calls.
pub const REQUIRED_OPERATIONS: &[Operation] = &[
    Operation {
        method: "GET",
        path: "/v1/health",
    },
    OPENAPI_OPERATION,
    Operation {
        method: "GET",
        path: "/v1/studios",
    },
    Operation {
        method: "GET",
        path: "/v1/sources",
    },
    // ASSUMED: the credential call, which `acquire.rs` sends.
    Operation {
        method: "POST",
        path: "/v1/sources/{sourceId}/publish-credentials",
    },
];

/// The required operations, sorted by whether the live spec lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckReport {
    pub found: Vec<Operation>,
    pub missing: Vec<Operation>,
    /// The spec's `info.version`.
    pub spec_version: Option<String>,
}

impl CheckReport {
    /// Returns whether the spec lists every required operation.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }
}

impl ApiClient {
    /// Fetches `/v1/openapi.json` (no key needed) and reports which of
    /// [`REQUIRED_OPERATIONS`] it lists.
    pub fn check_operations(&self) -> Result<CheckReport, ApiError> {
        let request = Request::get(self.endpoint(&["openapi.json"]), false);
        let reply = self.execute(&request)?;
        let invalid = |reason: String| ApiError::InvalidResponse {
            operation: request.operation(),
            reason,
        };
        let spec: Value = serde_json::from_slice(&reply.body)
            .map_err(|error| invalid(format!("the OpenAPI document is not JSON ({error})")))?;
        let mut report = compare_spec(&spec, REQUIRED_OPERATIONS).map_err(invalid)?;

        // The document was just fetched from that path, so it exists even
        // when the spec does not list itself.
        if let Some(index) = report
            .missing
            .iter()
            .position(|op| *op == OPENAPI_OPERATION)
        {
            report.found.push(report.missing.remove(index));
        }
        Ok(report)
    }
}

/// Sorts `required` into the operations `spec` lists and those it lacks.
pub(crate) fn compare_spec(spec: &Value, required: &[Operation]) -> Result<CheckReport, String> {
    let paths = spec
        .get("paths")
        .and_then(Value::as_object)
        .ok_or("the OpenAPI document has no 'paths' object")?;
    let bases = base_paths(spec);

    let mut report = CheckReport {
        found: Vec::new(),
        missing: Vec::new(),
        spec_version: spec
            .pointer("/info/version")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    for operation in required {
        let expected_segments = normalize(operation.path);
        let method = operation.method.to_ascii_lowercase();
        let listed = paths.iter().any(|(path, item)| {
            item.get(&method).is_some()
                && bases
                    .iter()
                    .any(|base| normalize(&format!("{base}/{path}")) == expected_segments)
        });
        if listed {
            report.found.push(*operation);
        } else {
            report.missing.push(*operation);
        }
    }
    Ok(report)
}

/// Returns the path prefixes the spec's paths sit under: none, each
/// `servers[].url` path, and a Swagger 2 `basePath`.
fn base_paths(spec: &Value) -> Vec<String> {
    let mut bases = vec![String::new()];
    let servers = spec.get("servers").and_then(Value::as_array);
    for url in servers
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("url")?.as_str())
    {
        bases.push(url_path(url).to_string());
    }
    if let Some(base_path) = spec.get("basePath").and_then(Value::as_str) {
        bases.push(base_path.to_string());
    }
    bases
}

/// Returns the path part of an absolute (`https://host/v1`) or relative (`/v1`)
/// server URL.
fn url_path(url: &str) -> &str {
    match url.find("://") {
        Some(scheme_end) => {
            let after_scheme = &url[scheme_end + 3..];
            after_scheme
                .find('/')
                .map_or("", |slash| &after_scheme[slash..])
        }
        None => url,
    }
}

/// Returns the path's segments without a leading `v1`, each `{parameter}` as `{}`.
fn normalize(path: &str) -> Vec<&str> {
    let mut segments: Vec<&str> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "{}"
            } else {
                segment
            }
        })
        .collect();
    if segments.first() == Some(&"v1") {
        segments.remove(0);
    }
    segments
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trax::api::acquire::{ACQUIRE_METHOD, ACQUIRE_PATH};
    use crate::trax::api::API_PREFIX;
    use serde_json::json;

    const STUDIOS: Operation = Operation {
        method: "GET",
        path: "/v1/studios",
    };
    const CREDENTIALS: Operation = Operation {
        method: "POST",
        path: "/v1/sources/{sourceId}/publish-credentials",
    };

    fn check(spec: Value) -> CheckReport {
        compare_spec(&spec, &[STUDIOS, CREDENTIALS]).unwrap()
    }

    fn both_found(report: &CheckReport) -> bool {
        report.found == vec![STUDIOS, CREDENTIALS] && report.missing.is_empty()
    }

    #[test]
    fn paths_with_prefix() {
        let report = check(json!({"paths": {
            "/v1/studios": {"get": {}},
            "/v1/sources/{sourceId}/publish-credentials": {"post": {}},
        }}));
        assert!(both_found(&report), "{report:?}");
    }

    #[test]
    fn paths_without_prefix_under_server() {
        let servers = [
            json!([{"url": "https://api.example.com/v1"}]),
            json!([{"url": "/v1/"}]),
            json!([{"url": "{scheme}://api.example.com/v1"}]),
            json!([{"url": "https://staging.example.com"}, {"url": "https://api.example.com/v1"}]),
        ];
        for servers in servers {
            let report = check(json!({"servers": servers, "paths": {
                "/studios": {"get": {}},
                "/sources/{id}/publish-credentials": {"post": {}},
            }}));
            assert!(both_found(&report), "{servers}: {report:?}");
        }
    }

    #[test]
    fn paths_without_prefix_or_server() {
        let report = check(json!({"paths": {
            "/studios/": {"get": {}},
            "/sources/{source_id}/publish-credentials": {"post": {}},
        }}));
        assert!(both_found(&report), "{report:?}");
    }

    #[test]
    fn swagger_base_path() {
        let report = check(json!({"basePath": "/v1", "paths": {
            "/v1/studios": {"get": {}},
            "/sources/{x}/publish-credentials": {"post": {}},
        }}));
        assert!(both_found(&report), "{report:?}");
    }

    #[test]
    fn method_must_match() {
        let report = check(json!({"paths": {
            "/v1/studios": {"post": {}},
            "/v1/sources/{sourceId}/publish-credentials": {"get": {}, "parameters": []},
        }}));
        assert_eq!(report.found, vec![]);
        assert_eq!(report.missing, vec![STUDIOS, CREDENTIALS]);
    }

    #[test]
    fn different_paths_missing() {
        let cases = [
            "/v1/studio",
            "/v1/studios/{id}",
            "/v2/studios",
            "/v1/v1/studios",
            "/v1/sources/publish-credentials",
            "/v1/sources/{id}/credentials",
            "/v1/sources/src_1/publish-credentials",
        ];
        for path in cases {
            let report = check(json!({"paths": {path: {"get": {}, "post": {}}}}));
            assert!(report.found.is_empty(), "{path}: {report:?}");
        }
    }

    #[test]
    fn spec_version_read() {
        let report = check(json!({"info": {"version": "1.4.2"}, "paths": {}}));
        assert_eq!(report.spec_version.as_deref(), Some("1.4.2"));
        assert!(!report.is_complete());
        assert_eq!(check(json!({"paths": {}})).spec_version, None);
    }

    #[test]
    fn spec_without_paths_rejected() {
        let error = compare_spec(&json!({"openapi": "3.1.0"}), REQUIRED_OPERATIONS).unwrap_err();
        assert!(error.contains("no 'paths' object"), "{error}");
        assert!(compare_spec(&json!([]), REQUIRED_OPERATIONS).is_err());
    }

    #[test]
    fn credential_call_listed_as_acquire_sends_it() {
        let expected = Operation {
            method: ACQUIRE_METHOD,
            path: "",
        };
        let acquire_path = format!("{API_PREFIX}{ACQUIRE_PATH}");
        let listed = REQUIRED_OPERATIONS
            .iter()
            .any(|op| op.method == expected.method && op.path == acquire_path);
        assert!(
            listed,
            "{ACQUIRE_METHOD} {acquire_path} is not in REQUIRED_OPERATIONS"
        );
    }

    #[test]
    fn url_path_forms() {
        let cases = [
            ("https://api.example.com/v1", "/v1"),
            ("https://api.example.com", ""),
            ("/v1", "/v1"),
            ("", ""),
        ];
        for (url, expected) in cases {
            assert_eq!(url_path(url), expected, "{url}");
        }
    }
}
