//! Wire shapes of the REST API that clients (agent, CLI, tests) decode.

use serde::{Deserialize, Serialize};

/// The one error body every non-2xx API answer carries, so clients need a single decoder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// Machine-readable code plus a human message; `field` names the offending input when there is one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    /// Stable, snake_case code (`validation_error`, `not_found`, …) for programs to branch on.
    pub code: String,
    /// Sentence for people; names the field and the problem.
    pub message: String,
    /// The request field (body or query) at fault, when the error is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Page-based list answer: `{data, total, page, per_page}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListPage<T> {
    /// The items of this page.
    pub data: Vec<T>,
    /// Number of items matching the filters across all pages.
    pub total: i64,
    /// 1-based page number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    /// Page size that was applied.
    pub per_page: i64,
    /// Opaque token for the next page in cursor mode; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Answer of `GET /api/v1/auth/info`, read by the dashboard before sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthInfo {
    /// `api-key` or `none`.
    pub auth_type: String,
}
