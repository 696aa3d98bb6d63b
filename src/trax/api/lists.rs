//! The list operations, `GET /v1/studios` and `GET /v1/sources`, and the
//! cursor pagination they share: `{"data":[…],"nextCursor":"…"}`, where an
//! absent, null or empty `nextCursor` ends the list.

use super::error::{sanitize, ApiError};
use super::transport::Request;
use super::ApiClient;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::collections::HashSet;

/// Items per page the client asks for, the API's maximum.
pub const PAGE_LIMIT: u32 = 200;

/// Pages the client reads before it gives up on a list, so a server that
/// never ends one cannot keep the bridge busy: 1000 pages of 200 items
/// each.
pub const MAX_PAGES: usize = 1000;

/// A studio the API key can see.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Studio {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

/// A source the API key can see.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Source {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// The source's `type`, such as `srt`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(rename = "studioId", default)]
    pub studio_id: Option<String>,
}

#[derive(Deserialize)]
struct Page<T> {
    data: Vec<T>,
    #[serde(rename = "nextCursor", default)]
    next_cursor: Option<String>,
}

impl ApiClient {
    /// Lists every studio the key can see, following `nextCursor` to the
    /// end of the list.
    pub fn studios(&self) -> Result<Vec<Studio>, ApiError> {
        self.list(&["studios"], &[])
    }

    /// Lists every source the key can see, or those of one studio.
    pub fn sources(&self, studio_id: Option<&str>) -> Result<Vec<Source>, ApiError> {
        match studio_id {
            Some(studio_id) => self.list(&["sources"], &[("studioId", studio_id)]),
            None => self.list(&["sources"], &[]),
        }
    }

    fn list<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        filters: &[(&str, &str)],
    ) -> Result<Vec<T>, ApiError> {
        let mut items = Vec::new();
        let mut seen_cursors = HashSet::new();
        let mut cursor: Option<String> = None;

        for _ in 0..MAX_PAGES {
            let request = Request::get(self.page_url(segments, filters, cursor.as_deref()), true);
            let reply = self.execute(&request)?;
            let page: Page<T> =
                serde_json::from_slice(&reply.body).map_err(|error| ApiError::InvalidResponse {
                    operation: request.operation(),
                    reason: format!(
                        "the page is not a list of the expected items ({}): the API may have \
                         changed; `bridge api check` compares it with what the bridge needs",
                        sanitize(&error.to_string(), self.key.as_ref(), 200)
                    ),
                })?;
            items.extend(page.data);

            match page.next_cursor.filter(|next| !next.is_empty()) {
                None => return Ok(items),
                Some(next) if !seen_cursors.insert(next.clone()) => {
                    return Err(ApiError::Pagination {
                        operation: request.operation(),
                        reason: format!(
                            "the API returned the cursor '{}' a second time, so the list would \
                             never end; report this to the deployment's operators",
                            sanitize(&next, self.key.as_ref(), 100)
                        ),
                    });
                }
                Some(next) => cursor = Some(next),
            }
        }

        let request = Request::get(self.page_url(segments, filters, None), true);
        Err(ApiError::Pagination {
            operation: request.operation(),
            reason: format!(
                "the list did not end after {MAX_PAGES} pages of {PAGE_LIMIT}; report this to \
                 the deployment's operators"
            ),
        })
    }

    fn page_url(
        &self,
        segments: &[&str],
        filters: &[(&str, &str)],
        cursor: Option<&str>,
    ) -> url::Url {
        let mut url = self.endpoint(segments);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("limit", &PAGE_LIMIT.to_string());
            for (name, value) in filters {
                query.append_pair(name, value);
            }
            if let Some(cursor) = cursor {
                query.append_pair("cursor", cursor);
            }
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn studio_ignores_unknown_fields() {
        let page: Page<Studio> = serde_json::from_str(
            r#"{"data":[{"id":"std_1","name":"Morning","createdAt":"x","n":{"a":1}}],
                "nextCursor":null,"total":1}"#,
        )
        .unwrap();
        let expected = Studio {
            id: "std_1".into(),
            name: "Morning".into(),
        };
        assert_eq!(page.data, vec![expected]);
        assert_eq!(page.next_cursor, None);
    }

    #[test]
    fn source_fields_read() {
        let page: Page<Source> = serde_json::from_str(
            r#"{"data":[{"id":"src_1","name":"Cam 1","type":"srt","studioId":"std_1","x":0},
                        {"id":"src_2"}],
                "nextCursor":"c2"}"#,
        )
        .unwrap();
        assert_eq!(page.data[0].kind.as_deref(), Some("srt"));
        assert_eq!(page.data[0].studio_id.as_deref(), Some("std_1"));
        assert_eq!(page.data[1].name, "");
        assert_eq!(page.data[1].kind, None);
        assert_eq!(page.next_cursor.as_deref(), Some("c2"));
    }

    #[test]
    fn page_without_data_rejected() {
        let result = serde_json::from_str::<Page<Studio>>(r#"{"items":[]}"#);
        assert!(result.is_err());
    }

    #[test]
    fn page_url_carries_limit_filter_cursor() {
        let client =
            ApiClient::new(super::super::ApiConfig::new("https://api.example.com")).unwrap();
        let url = client.page_url(&["sources"], &[("studioId", "std 1")], Some("c/2"));
        assert_eq!(
            url.as_str(),
            "https://api.example.com/v1/sources?limit=200&studioId=std+1&cursor=c%2F2"
        );
    }
}
