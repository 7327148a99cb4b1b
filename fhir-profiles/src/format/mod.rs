//! Reading FHIR R4 resources from JSON or XML into one canonical JSON form, and writing that
//! form back out as JSON or XML.

mod divs;
mod duplicates;
mod json_in;
mod model;
mod prolog;
pub mod xml_guard;
mod xml_in;
mod xml_out;

use serde_json::Value;

use crate::outcome::{has_errors, Issue, IssueType};

/// The two FHIR wire formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FhirFormat {
    Json,
    Xml,
}

/// Why a body is not an acceptable FHIR resource; each issue says where, when that is known.
#[derive(Debug, thiserror::Error)]
#[error("{}", .issues.first().map(|i| i.diagnostics.as_str()).unwrap_or("invalid resource"))]
pub struct ParseError {
    pub issues: Vec<Issue>,
}

impl ParseError {
    fn new(issues: Vec<Issue>) -> Self {
        ParseError { issues }
    }

    fn single(code: IssueType, diagnostics: impl Into<String>) -> Self {
        ParseError::new(vec![Issue::error(code, diagnostics)])
    }
}

/// Strictly parses a FHIR R4 resource (any R4 resource type) from JSON or XML through
/// fhirbolt's typed R4 model (DeserializationMode::Strict) and returns its canonical JSON
/// (fhirbolt JSON serialisation, so XML and JSON input converge).
///
/// Unknown elements, wrong types, malformed JSON/XML, a missing or unknown resourceType are
/// errors whose issues carry a FHIRPath `expression` naming where the problem is, e.g.
/// `DocumentReference.content[0].attachment.foo`. Primitive values must match the lexical
/// forms of the official R4 JSON schema, and narrative must be well-formed XHTML. Decimal
/// precision, extensions (incl. primitive `_x` extensions), narrative xhtml and contained
/// resources survive exactly.
pub fn parse_resource(body: &[u8], format: FhirFormat) -> Result<Value, ParseError> {
    match format {
        FhirFormat::Json => json_in::parse(body),
        FhirFormat::Xml => xml_in::parse(body),
    }
}

/// Serialises canonical JSON (as stored) to bytes.
pub fn to_json_bytes(resource: &Value, pretty: bool) -> Vec<u8> {
    let bytes = if pretty {
        serde_json::to_vec_pretty(resource)
    } else {
        serde_json::to_vec(resource)
    };
    // Serialising a Value cannot fail: its keys are strings and its numbers valid.
    bytes.unwrap_or_default()
}

/// Why a stored resource could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("cannot render as XML: {0}")]
    Xml(String),
    #[error("stored resource is not valid FHIR JSON: {0}")]
    Json(String),
}

/// Renders a canonical JSON resource as FHIR XML (via fhirbolt; narrative is copied verbatim).
pub fn to_xml_string(resource: &Value, pretty: bool) -> Result<String, FormatError> {
    xml_out::to_xml(resource, pretty)
}

/// Same, from stored JSON bytes.
pub fn json_bytes_to_xml(json: &[u8], pretty: bool) -> Result<String, FormatError> {
    let value: Value =
        serde_json::from_slice(json).map_err(|e| FormatError::Json(e.to_string()))?;
    to_xml_string(&value, pretty)
}

/// The error for a body that passed the structural checks but that fhirbolt's strict model
/// still rejects (a missing mandatory primitive, a duplicate key): the hosted types' snapshot
/// names the missing elements; otherwise fhirbolt's own message is all there is.
fn model_rejected(value: &Value, why: impl std::fmt::Display) -> ParseError {
    let missing: Vec<Issue> = crate::validate::validate_resource(value)
        .into_iter()
        .filter(|i| i.code == IssueType::Required && i.is_error())
        .collect();
    if has_errors(&missing) {
        return ParseError::new(missing);
    }
    let mut issue = Issue::error(IssueType::Structure, format!("invalid resource: {why}"));
    if let Some(t) = value.get("resourceType").and_then(Value::as_str) {
        issue = issue.at(t);
    }
    ParseError::new(vec![issue])
}
