//! Reading the Bundle body itself: strict parsing, and whether it is a batch
//! or a transaction.

use crate::Status;
use fhir_profiles::format::{parse_resource, FhirFormat};
use fhir_profiles::outcome::{Issue, IssueType};
use serde_json::Value;

use super::BundleKind;
use crate::error::ServiceError;

/// The parsed Bundle, and whether it passed the strict parse as a whole
/// (then its entries' resources are already structurally checked).
///
/// A batch whose only problems lie inside entry resources is still run: its
/// JSON is read leniently and each entry's resource parsed on its own, so
/// that each bad entry gets its own outcome. (An XML batch with such an
/// entry is refused as a whole: its entries cannot be cut out without a
/// parse.)
pub(super) fn read_bundle(body: &[u8], format: FhirFormat) -> Result<(Value, bool), ServiceError> {
    if let Err(e) = std::str::from_utf8(body) {
        return Err(ServiceError::bad_request(format!(
            "the body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )));
    }
    // fhirbolt is young; should it ever panic on some input, that input is
    // unparseable, not a server failure.
    let parsed = std::panic::catch_unwind(|| parse_resource(body, format))
        .map_err(|_| ServiceError::bad_request("the body could not be parsed as a FHIR Bundle"))?;
    let issues = match parsed {
        Ok(bundle) => {
            check_is_bundle(&bundle)?;
            return Ok((bundle, true));
        }
        Err(e) => e.issues,
    };
    let in_entries = !issues.is_empty()
        && issues.iter().all(|i| {
            !i.expression.is_empty() && i.expression.iter().all(|e| entry_of(e).is_some())
        });
    if in_entries && format == FhirFormat::Json {
        if let Ok(value) = serde_json::from_slice::<Value>(body) {
            if value.get("resourceType").and_then(Value::as_str) == Some("Bundle")
                && value.get("type").and_then(Value::as_str) == Some("batch")
            {
                return Ok((value, false));
            }
        }
    }
    // A missing element inside an entry's resource is a broken rule (422),
    // as it is for a REST body; anything else is an unreadable Bundle (400).
    let missing_element =
        |i: &Issue| i.code == IssueType::Required && i.expression.iter().any(|x| x.contains('.'));
    let status = if in_entries && issues.iter().all(missing_element) {
        Status::UNPROCESSABLE_ENTITY
    } else {
        Status::BAD_REQUEST
    };
    Err(ServiceError::with_issues(status, issues))
}

/// The entry index of an expression inside an entry's resource
/// (`Bundle.entry[3].resource...`).
fn entry_of(expression: &str) -> Option<usize> {
    let rest = expression.strip_prefix("Bundle.entry[")?;
    let (index, rest) = rest.split_once(']')?;
    if rest == ".resource" || rest.starts_with(".resource.") || rest.starts_with(".resource[") {
        index.parse().ok()
    } else {
        None
    }
}

/// Only a Bundle may be POSTed to the base.
fn check_is_bundle(value: &Value) -> Result<(), ServiceError> {
    match value.get("resourceType").and_then(Value::as_str) {
        Some("Bundle") => Ok(()),
        other => Err(ServiceError::with_issues(
            Status::BAD_REQUEST,
            vec![Issue::error(
                IssueType::Invalid,
                format!(
                    "POST to the base takes a batch or transaction Bundle, not {}",
                    other.unwrap_or("this body")
                ),
            )
            .at("resourceType")],
        )),
    }
}

/// `Bundle.type`: batch or transaction, nothing else.
pub(super) fn bundle_kind(bundle: &Value) -> Result<BundleKind, ServiceError> {
    match bundle.get("type").and_then(Value::as_str) {
        Some("batch") => Ok(BundleKind::Batch),
        Some("transaction") => Ok(BundleKind::Transaction),
        other => Err(ServiceError::with_issues(
            Status::BAD_REQUEST,
            vec![Issue::error(
                IssueType::Invalid,
                match other {
                    Some(t) => format!(
                        "Bundle.type is '{t}'; POST to the base takes a batch or a transaction"
                    ),
                    None => "Bundle.type is missing; it must be batch or transaction".into(),
                },
            )
            .at("Bundle.type")],
        )),
    }
}

/// Takes the entries out of the Bundle (none when `entry` is absent).
pub(super) fn take_entries(bundle: &mut Value) -> Result<Vec<Value>, ServiceError> {
    match bundle.get_mut("entry").map(Value::take) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(entries)) => Ok(entries),
        Some(_) => Err(ServiceError::bad_request("Bundle.entry must be an array")),
    }
}
