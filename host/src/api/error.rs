//! The one place API errors become HTTP answers: `{"error": {"code", "message", "field"?}}`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use certctl_core::api::{ErrorBody, ErrorDetail};

use crate::domain::resource::FieldError;
use crate::store::StoreError;
use crate::store::records::WriteError;

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Input failed validation (400); names the field.
    #[error("{message}")]
    Validation {
        /// Offending field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The body is not JSON at all (400).
    #[error("{0}")]
    MalformedJson(String),
    /// No or wrong credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials valid but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such resource or route (404).
    #[error("{0}")]
    NotFound(String),
    /// Route exists, method does not (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Conflicts with existing state (409).
    #[error("{0}")]
    Conflict(String),
    /// Body larger than `CERTCTL_MAX_BODY_SIZE` (413).
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Rate limit exceeded (429).
    #[error("rate limit exceeded; retry after {retry_after} s")]
    TooManyRequests {
        /// Seconds until a token is available.
        retry_after: u64,
    },
    /// The database is unreachable (503).
    #[error("{0}")]
    Unavailable(String),
    /// A bug; logged with detail, answered without (500).
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A validation error about `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Validation { .. } => "validation_error",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        let message = format!("{}: {}", e.field, e.message);
        ApiError::Validation {
            field: e.field,
            message,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Unavailable(m) => {
                ApiError::Unavailable(format!("database unavailable: {m}"))
            }
            StoreError::AppendOnly(m) => ApiError::Conflict(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::secrets::SecretsError> for ApiError {
    fn from(e: crate::secrets::SecretsError) -> Self {
        if e.is_input_error() {
            ApiError::field(crate::secrets::CONFIG_FIELD, e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::UnknownReference { ref field, .. } => ApiError::Validation {
                field: field.clone(),
                message: e.to_string(),
            },
            WriteError::Store(s) => s.into(),
        }
    }
}

impl From<crate::store::jobs::JobError> for ApiError {
    fn from(e: crate::store::jobs::JobError) -> Self {
        use crate::store::jobs::JobError;
        match e {
            JobError::Invalid(t) => ApiError::Conflict(t.to_string()),
            JobError::Raced(_) => ApiError::Conflict(e.to_string()),
            JobError::Store(s) => s.into(),
        }
    }
}

impl From<crate::pipeline::PipelineError> for ApiError {
    fn from(e: crate::pipeline::PipelineError) -> Self {
        use crate::pipeline::PipelineError;
        match e {
            PipelineError::Invalid(m) => ApiError::field("csr_pem", m),
            PipelineError::NotFound(m) => ApiError::NotFound(m),
            PipelineError::Conflict(m) => ApiError::Conflict(m),
            PipelineError::Forbidden(m) => ApiError::Forbidden(m),
            PipelineError::Job(j) => j.into(),
            PipelineError::Store(s) => s.into(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. } | ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            tracing::error!(error = %detail, "internal error");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
                field: match self {
                    ApiError::Validation { field, .. } => Some(field.clone()),
                    _ => None,
                },
            },
        };
        let mut resp = HttpResponse::build(self.status_code());
        match self {
            ApiError::TooManyRequests { retry_after } => {
                resp.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            ApiError::Unauthorized(_) => {
                resp.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            _ => {}
        }
        resp.json(body)
    }
}

/// Parses a request body as JSON with a message that says where it broke.
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedJson(
            "request body is empty; send a JSON object".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::MalformedJson(format!(
            "request body is not valid JSON (line {}, column {}): {e}",
            e.line(),
            e.column()
        ))
    })
}
