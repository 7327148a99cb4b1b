//! Content negotiation: which FHIR format a request body is in, and which
//! one the response should use (`_format` wins over `Accept`), plus `_pretty`.

use actix_web::http::header;
use actix_web::HttpRequest;
use fhir_profiles::format::FhirFormat;

use fhirledger_service::ServiceError;

/// How a response body is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseFormat {
    pub format: FhirFormat,
    pub pretty: bool,
}

impl Default for ResponseFormat {
    fn default() -> Self {
        ResponseFormat {
            format: FhirFormat::Json,
            pretty: false,
        }
    }
}

/// Maps a MIME type or `_format` short form to a FHIR format.
pub fn fhir_format_of(mime: &str) -> Option<FhirFormat> {
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/fhir+json" | "application/json" | "json" | "application/json+fhir" => {
            Some(FhirFormat::Json)
        }
        "application/fhir+xml"
        | "application/xml"
        | "text/xml"
        | "xml"
        | "application/xml+fhir" => Some(FhirFormat::Xml),
        _ => None,
    }
}

/// True only for the FHIR-specific MIME types (not plain JSON/XML), which is
/// what tells a Binary resource body from raw content.
pub fn is_fhir_mime(mime: &str) -> bool {
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "application/fhir+json" | "application/fhir+xml"
    )
}

/// One entry of an `Accept` header, with its quality.
#[derive(Debug, Clone)]
pub struct AcceptItem {
    pub mime: String,
    pub q: f32,
}

/// Parses `Accept` into items ordered by preference (stable for equal q).
pub fn accept_items(req: &HttpRequest) -> Vec<AcceptItem> {
    let raw: Vec<&str> = req
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .collect();
    let mut items: Vec<AcceptItem> = raw
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|part| {
            let mut pieces = part.split(';');
            let mime = pieces.next()?.trim().to_ascii_lowercase();
            if mime.is_empty() {
                return None;
            }
            let q = pieces
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            Some(AcceptItem { mime, q })
        })
        .filter(|i| i.q > 0.0)
        .collect();
    items.sort_by(|a, b| b.q.partial_cmp(&a.q).unwrap_or(std::cmp::Ordering::Equal));
    items
}

/// The value of a query parameter, first occurrence.
pub fn query_param(req: &HttpRequest, name: &str) -> Option<String> {
    form_pairs(req.query_string())
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

pub use fhirledger_service::query::form_pairs;

/// The response format: `_format` when given (an unsupported value is 406),
/// else the first FHIR-capable `Accept` entry, else the request body's FHIR
/// format, else JSON.
pub fn response_format(req: &HttpRequest) -> Result<ResponseFormat, ServiceError> {
    let pretty = match query_param(req, "_pretty").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ServiceError::bad_request(format!(
                "_pretty must be true or false, not '{other}'"
            )))
        }
    };
    let format = match query_param(req, "_format") {
        Some(f) => fhir_format_of(&f).ok_or_else(|| {
            ServiceError::not_acceptable(format!("_format '{f}' is not supported; use json or xml"))
        })?,
        None => accept_items(req)
            .iter()
            .find_map(|i| fhir_format_of(&i.mime))
            .or_else(|| crate::http::body_format::body_format(req))
            .unwrap_or(FhirFormat::Json),
    };
    Ok(ResponseFormat { format, pretty })
}

/// Best-effort format for error answers, when negotiation itself failed.
pub fn error_format(req: &HttpRequest) -> ResponseFormat {
    response_format(req).unwrap_or_default()
}

/// The format of a request body, from `Content-Type` (415 when missing or
/// not a FHIR format).
pub fn request_format(req: &HttpRequest) -> Result<FhirFormat, ServiceError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ServiceError::unsupported_media_type(
                "Content-Type is required: application/fhir+json or application/fhir+xml",
            )
        })?;
    fhir_format_of(ct).ok_or_else(|| {
        ServiceError::unsupported_media_type(format!(
            "Content-Type '{ct}' is not supported; use application/fhir+json or application/fhir+xml"
        ))
    })
}
