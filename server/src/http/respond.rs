//! Building responses for stored resources: headers every FHIR client
//! relies on (`ETag`, `Last-Modified`, `Location`) and bodies in the
//! negotiated format.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, HttpResponseBuilder};
use chrono::{DateTime, Utc};
use fhir_profiles::format::{json_bytes_to_xml, to_json_bytes, to_xml_string, FhirFormat};
use fhir_profiles::outcome::{operation_outcome, Issue};
use fhirledger_postgres::StoredVersion;

use crate::http::negotiate::ResponseFormat;
use crate::http::preconditions::ReturnPreference;
use fhirledger_service::ServiceError;

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";
pub const FHIR_XML: &str = "application/fhir+xml; charset=utf-8";

/// Renders a JSON resource value in the negotiated format.
pub fn resource_body(
    resource: &serde_json::Value,
    format: ResponseFormat,
) -> Result<(&'static str, Vec<u8>), ServiceError> {
    match format.format {
        FhirFormat::Json => Ok((FHIR_JSON, to_json_bytes(resource, format.pretty))),
        FhirFormat::Xml => to_xml_string(resource, format.pretty)
            .map(|x| (FHIR_XML, x.into_bytes()))
            .map_err(|e| ServiceError::internal(e.to_string())),
    }
}

/// Renders stored JSON text; the common case (compact JSON) is the stored
/// bytes themselves, with no parsing at all.
pub fn stored_body(
    content: &str,
    format: ResponseFormat,
) -> Result<(&'static str, Vec<u8>), ServiceError> {
    match (format.format, format.pretty) {
        (FhirFormat::Json, false) => Ok((FHIR_JSON, content.as_bytes().to_vec())),
        (FhirFormat::Json, true) => {
            let value: serde_json::Value = serde_json::from_str(content)
                .map_err(|e| ServiceError::internal(format!("stored JSON is corrupt: {e}")))?;
            Ok((FHIR_JSON, to_json_bytes(&value, true)))
        }
        (FhirFormat::Xml, pretty) => json_bytes_to_xml(content.as_bytes(), pretty)
            .map(|x| (FHIR_XML, x.into_bytes()))
            .map_err(|e| ServiceError::internal(e.to_string())),
    }
}

/// `W/"n"`.
pub fn etag(version_id: i64) -> String {
    format!("W/\"{version_id}\"")
}

/// An HTTP date (RFC 7231) for `Last-Modified`.
pub fn http_date(ts: DateTime<Utc>) -> String {
    ts.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The absolute URL of a version: `{fhir base}/{type}/{id}/_history/{v}`.
pub fn version_url(fhir_base: &str, v: &StoredVersion) -> String {
    format!(
        "{fhir_base}/{}/{}/_history/{}",
        v.resource_type, v.id, v.version_id
    )
}

/// A builder with the version headers set.
pub fn versioned(status: StatusCode, v: &StoredVersion) -> HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.insert_header(("ETag", etag(v.version_id)))
        .insert_header(("Last-Modified", http_date(v.last_updated)));
    b
}

/// The answer to a create or update, honouring `Prefer: return=`.
pub fn write_response(
    status: StatusCode,
    v: &StoredVersion,
    fhir_base: &str,
    format: ResponseFormat,
    preference: ReturnPreference,
    message: &str,
) -> Result<HttpResponse, ServiceError> {
    let mut b = versioned(status, v);
    b.insert_header(("Location", version_url(fhir_base, v)));
    match preference {
        ReturnPreference::Minimal => Ok(b.finish()),
        ReturnPreference::Representation => match &v.content {
            Some(content) => {
                let (ct, body) = stored_body(content, format)?;
                Ok(b.insert_header(("Content-Type", ct)).body(body))
            }
            None => Ok(b.finish()),
        },
        ReturnPreference::OperationOutcome => {
            let outcome = operation_outcome(&[Issue::information(message)]);
            let (ct, body) = resource_body(&outcome, format)?;
            Ok(b.insert_header(("Content-Type", ct)).body(body))
        }
    }
}
