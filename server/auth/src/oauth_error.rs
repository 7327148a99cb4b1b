//! OAuth 2.0 error answers (RFC 6749 §5.2) from the token, introspection and
//! revocation endpoints: JSON, never cached.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

/// An OAuth error: its code, a description for developers, and the status.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// A code or refresh token was presented a second time (someone else
    /// holds a copy): a security alert besides the refusal.
    pub reuse_detected: bool,
    /// Seconds the client should wait before trying again (`Retry-After`),
    /// on a 429 or a 503.
    pub retry_after: Option<i64>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            reuse_detected: false,
            retry_after: None,
        }
    }

    /// `invalid_grant` for a code or refresh token used a second time.
    pub fn reused(d: impl Into<String>) -> Self {
        OAuthError {
            reuse_detected: true,
            ..Self::invalid_grant(d)
        }
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    /// Client authentication failed: 401, as RFC 6749 asks.
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }
    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }
    pub fn unsupported_token_type(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unsupported_token_type", d)
    }
    /// The database or the process is unavailable for a moment: 503, and
    /// `Retry-After` as the FHIR API gives it.
    pub fn server_error(d: impl Into<String>) -> Self {
        OAuthError {
            retry_after: Some(2),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "server_error", d)
        }
    }
    /// Over a rate limit: 429 with `Retry-After`. `temporarily_unavailable`
    /// is the registered OAuth error code nearest to "too many requests"
    /// (RFC 6749 §4.1.2.1: "temporary overloading").
    pub fn too_many_requests(d: impl Into<String>, retry_after_seconds: i64) -> Self {
        OAuthError {
            retry_after: Some(retry_after_seconds.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable", d)
        }
    }

    pub fn respond(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status);
        no_store(&mut resp);
        if self.status == StatusCode::UNAUTHORIZED {
            resp.insert_header(("WWW-Authenticate", "Basic realm=\"fhirledger\""));
        }
        if let Some(seconds) = self.retry_after {
            resp.insert_header(("Retry-After", seconds.to_string()));
        }
        resp.insert_header(("Content-Type", "application/json"))
            .body(json!({ "error": self.error, "error_description": self.description }).to_string())
    }
}

impl From<fhirledger_postgres::StoreError> for OAuthError {
    fn from(e: fhirledger_postgres::StoreError) -> Self {
        tracing::error!(error = %e, "authorization server storage failure");
        OAuthError::server_error("the authorization server's database is unavailable; retry")
    }
}

impl From<fhirledger_service::Stopped> for OAuthError {
    fn from(_: fhirledger_service::Stopped) -> Self {
        OAuthError::server_error("the server is shutting down")
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache`, for anything with a token in it.
/// Browser apps call these endpoints with fetch, so any origin may read the
/// answer (credentials travel in the body or Authorization, never cookies).
pub fn no_store(resp: &mut actix_web::HttpResponseBuilder) {
    resp.insert_header(("Cache-Control", "no-store"))
        .insert_header(("Pragma", "no-cache"))
        .insert_header(("Access-Control-Allow-Origin", "*"));
}

/// A JSON success answer that must not be cached.
pub fn json_no_store(value: &serde_json::Value) -> HttpResponse {
    let mut resp = HttpResponse::Ok();
    no_store(&mut resp);
    resp.insert_header(("Content-Type", "application/json"))
        .body(value.to_string())
}

/// Errors actix-web answers by itself before the handler runs (a body over
/// the form extractor's limit: 413; a body that cannot be read: 400) come as
/// `text/plain`. On the endpoints whose clients parse JSON (token,
/// introspection, revocation, launch, the admin API) they are turned into
/// OAuth errors here, so a client never gets an error it cannot read.
pub async fn json_errors(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<actix_web::body::BoxBody>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let response = next.call(req).await?;
    let status = response.status();
    let plain = response
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return Ok(response);
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => OAuthError::new(
            status,
            "invalid_request",
            "the request body is larger than this endpoint accepts",
        ),
        s if s.is_server_error() => OAuthError::server_error("the request could not be handled"),
        s => OAuthError::new(s, "invalid_request", "the request could not be read"),
    };
    Ok(response.into_response(error.respond()))
}
