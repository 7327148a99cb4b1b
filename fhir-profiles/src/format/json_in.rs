//! FHIR JSON bodies: syntax, then the structural check (which knows where problems are),
//! then fhirbolt's strict model.

use serde_json::Value;

use super::duplicates;
use super::model::{canonical_json, strict, R4Resource};
use super::{model_rejected, ParseError};
use crate::outcome::{has_errors, IssueType};
use crate::structure;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

pub(super) fn parse(body: &[u8]) -> Result<Value, ParseError> {
    let body = body.strip_prefix(UTF8_BOM).unwrap_or(body);
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ParseError::single(
            IssueType::Structure,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    duplicates::check(body).map_err(|e| ParseError::single(IssueType::Structure, e.to_string()))?;
    let issues = structure::check_resource(&value);
    if has_errors(&issues) {
        return Err(ParseError::new(issues));
    }
    // From the bytes rather than the Value, so duplicate keys are caught too.
    let resource: R4Resource =
        fhirbolt::json::from_slice(body, strict()).map_err(|e| model_rejected(&value, e))?;
    canonical_json(resource).map_err(|e| ParseError::single(IssueType::Exception, e))
}
