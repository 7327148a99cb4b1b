//! Turning a request body into a resource ready to store: strict parsing,
//! this server's validation rules, and the server-owned parts of `meta`.

use crate::Status;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use fhir_profiles::format::{parse_resource, FhirFormat};
use fhir_profiles::outcome::{has_errors, Issue, IssueType};
use fhir_profiles::search::{extract, IndexRows};
use fhir_profiles::validate::{identifiers, validate_parsed};
use serde_json::{Map, Value};

use crate::error::ServiceError;

/// Bytes of a Binary, with the content type they are served as.
#[derive(Debug, Clone)]
pub struct BinaryPayload {
    pub content_type: String,
    pub data: Vec<u8>,
}

/// A validated resource about to be written.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub resource_type: String,
    /// The `id` the body carried, if any.
    pub body_id: Option<String>,
    /// Canonical JSON without `id`; for a Binary, without `data`.
    pub resource: Value,
    pub identifiers: Vec<(Option<String>, String)>,
    /// Everything this version is found by in searches.
    pub index: IndexRows,
    /// For a Binary posted as a FHIR resource: its decoded bytes.
    pub binary: Option<BinaryPayload>,
}

/// The Binary that describes raw bytes about to be streamed in (a raw
/// `Binary` upload, a file uploaded through the portal): its content type,
/// the bytes to come, nothing to index.
pub fn raw_binary(
    content_type: String,
    security_context: Option<&str>,
    id: Option<String>,
) -> Prepared {
    let mut resource = serde_json::json!({"resourceType": "Binary", "contentType": content_type});
    if let Some(ctx) = security_context {
        resource["securityContext"] = serde_json::json!({"reference": ctx});
    }
    Prepared {
        resource_type: "Binary".into(),
        body_id: id,
        resource,
        identifiers: Vec::new(),
        index: Default::default(),
        binary: Some(BinaryPayload {
            content_type,
            data: Vec::new(),
        }),
    }
}

/// Parses and validates a body for `resource_type`: 400 when it cannot be
/// parsed or is of another type, 422 when it breaks a rule.
pub fn prepare(
    resource_type: &str,
    body: &[u8],
    format: FhirFormat,
    fhir_base: &str,
) -> Result<Prepared, ServiceError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ServiceError::bad_request(format!(
            "the body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )));
    }
    // fhirbolt is young; should it ever panic on some input, that input is
    // unparseable, not a server failure.
    let parsed = std::panic::catch_unwind(|| parse_resource(body, format)).map_err(|_| {
        ServiceError::bad_request("the body could not be parsed as a FHIR resource")
    })?;
    let resource = parsed.map_err(|e| {
        // Parsed, but a mandatory element is missing: that is a rule broken (422),
        // not an unreadable body (400).
        let missing_element = |i: &Issue| {
            i.code == IssueType::Required && i.expression.iter().any(|x| x.contains('.'))
        };
        let status = if !e.issues.is_empty() && e.issues.iter().all(missing_element) {
            Status::UNPROCESSABLE_ENTITY
        } else {
            Status::BAD_REQUEST
        };
        ServiceError::with_issues(status, e.issues)
    })?;
    prepare_value(resource_type, resource, fhir_base)
}

/// The same for a resource that `parse_resource` produced (it relies on the
/// structural checks having run there), alone or inside a Bundle.
pub(crate) fn prepare_value(
    resource_type: &str,
    mut resource: Value,
    fhir_base: &str,
) -> Result<Prepared, ServiceError> {
    let actual = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("");
    if actual != resource_type {
        return Err(ServiceError::with_issues(
            Status::BAD_REQUEST,
            vec![Issue::error(
                IssueType::Invalid,
                format!("the body is a {actual} but the URL is for {resource_type}"),
            )
            .at("resourceType")],
        ));
    }
    // `parse_resource` already checked the structure; only the rules remain.
    let issues = validate_parsed(&resource);
    if has_errors(&issues) {
        return Err(ServiceError::with_issues(
            Status::UNPROCESSABLE_ENTITY,
            issues,
        ));
    }
    let identifiers = identifiers(&resource);
    if identifiers
        .iter()
        .any(|(s, v)| v.contains('\0') || s.as_deref().is_some_and(|s| s.contains('\0')))
    {
        return Err(ServiceError::with_issues(
            Status::UNPROCESSABLE_ENTITY,
            vec![Issue::error(
                IssueType::Value,
                "identifiers must not contain NUL characters",
            )
            .at(format!("{resource_type}.identifier"))],
        ));
    }
    let index = extract(&resource, fhir_base);
    let obj = resource
        .as_object_mut()
        .ok_or_else(|| ServiceError::bad_request("the body is not a resource"))?;
    let body_id = obj
        .remove("id")
        .and_then(|v| v.as_str().map(str::to_string));
    let binary = if resource_type == "Binary" {
        Some(take_binary_data(obj)?)
    } else {
        None
    };
    Ok(Prepared {
        resource_type: resource_type.to_string(),
        body_id,
        resource,
        identifiers,
        index,
        binary,
    })
}

fn take_binary_data(obj: &mut Map<String, Value>) -> Result<BinaryPayload, ServiceError> {
    let content_type = obj
        .get("contentType")
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream")
        .to_string();
    let data = match obj.remove("data") {
        // base64Binary may contain whitespace (line breaks in the examples).
        Some(Value::String(b64)) => base64::engine::general_purpose::STANDARD
            .decode(
                b64.bytes()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect::<Vec<u8>>(),
            )
            .map_err(|e| {
                ServiceError::with_issues(
                    Status::UNPROCESSABLE_ENTITY,
                    vec![Issue::error(
                        IssueType::Value,
                        format!("Binary.data is not valid base64: {e}"),
                    )
                    .at("Binary.data")],
                )
            })?,
        _ => Vec::new(),
    };
    Ok(BinaryPayload { content_type, data })
}

/// The stored JSON of a version: the prepared resource with the server's
/// `id`, `meta.versionId` and `meta.lastUpdated`, in canonical key order
/// (`resourceType`, `id`, `meta`, then the rest as sent).
pub fn render(resource: &Value, id: &str, version_id: i64, last_updated: DateTime<Utc>) -> String {
    let mut out = Map::new();
    let source = resource.as_object();
    out.insert(
        "resourceType".into(),
        source
            .and_then(|o| o.get("resourceType"))
            .cloned()
            .unwrap_or(Value::Null),
    );
    out.insert("id".into(), Value::String(id.to_string()));
    let mut meta = source
        .and_then(|o| o.get("meta"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    meta.remove("versionId");
    meta.remove("lastUpdated");
    let mut new_meta = Map::new();
    new_meta.insert("versionId".into(), Value::String(version_id.to_string()));
    new_meta.insert(
        "lastUpdated".into(),
        Value::String(last_updated.to_rfc3339_opts(SecondsFormat::Micros, true)),
    );
    new_meta.extend(meta);
    out.insert("meta".into(), Value::Object(new_meta));
    if let Some(source) = source {
        for (k, v) in source {
            if !matches!(k.as_str(), "resourceType" | "id" | "meta") {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out).to_string()
}
