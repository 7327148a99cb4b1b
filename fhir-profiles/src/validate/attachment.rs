//! Attachment integrity: inline `data` must be base64, and `size` and `hash` (SHA-1 in R4)
//! must describe it, so stored documents cannot misstate what they carry.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};

use crate::outcome::{Issue, IssueType};
use crate::path;

/// Checks an Attachment at `at`.
pub(super) fn check(attachment: &Map<String, Value>, at: &str) -> Vec<Issue> {
    let Some(Value::String(data)) = attachment.get("data") else {
        return Vec::new();
    };
    let bytes = match decode(data) {
        Ok(bytes) => bytes,
        Err(e) => {
            return vec![Issue::error(
                IssueType::Value,
                format!("Attachment.data is not valid base64: {e}"),
            )
            .at(path::child(at, "data"))]
        }
    };
    let mut issues = Vec::new();
    if let Some(size) = attachment.get("size").and_then(Value::as_u64) {
        if size != bytes.len() as u64 {
            issues.push(
                Issue::error(
                    IssueType::Value,
                    format!(
                        "Attachment.size is {size} but data holds {} bytes",
                        bytes.len()
                    ),
                )
                .at(path::child(at, "size")),
            );
        }
    }
    if let Some(Value::String(hash)) = attachment.get("hash") {
        let actual = Sha1::digest(&bytes);
        let issue = match decode(hash) {
            Err(e) => Some(format!("Attachment.hash is not valid base64: {e}")),
            Ok(claimed) if claimed.as_slice() != actual.as_slice() => Some(format!(
                "Attachment.hash does not match the data: its SHA-1 is {}",
                STANDARD.encode(actual)
            )),
            Ok(_) => None,
        };
        issues.extend(issue.map(|d| Issue::error(IssueType::Value, d).at(path::child(at, "hash"))));
    }
    issues
}

/// base64 as FHIR allows it (the schema permits whitespace between groups).
fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    if text.bytes().any(|b| b.is_ascii_whitespace()) {
        let compact: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        STANDARD.decode(compact)
    } else {
        STANDARD.decode(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn issues(v: Value) -> Vec<String> {
        let Value::Object(obj) = v else {
            return vec!["not an object".into()];
        };
        check(&obj, "A")
            .into_iter()
            .flat_map(|i| i.expression)
            .collect()
    }

    #[test]
    fn accepts_matching_size_and_hash() {
        // "hello" = aGVsbG8=, SHA-1 qvTGHdzF6KLavt4PO0gs2a6pQ00=
        let ok = json!({"data": "aGVs\nbG8=", "size": 5, "hash": "qvTGHdzF6KLavt4PO0gs2a6pQ00="});
        assert!(issues(ok).is_empty());
        assert!(issues(json!({"url": "http://x", "size": 99, "hash": "zz"})).is_empty());
    }

    #[test]
    fn rejects_mismatches_and_bad_base64() {
        let wrong = json!({"data": "aGVsbG8=", "size": 6, "hash": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="});
        assert_eq!(issues(wrong), vec!["A.size", "A.hash"]);
        assert_eq!(issues(json!({"data": "not base64!"})), vec!["A.data"]);
        assert_eq!(
            issues(json!({"data": "aGVsbG8=", "hash": "%%"})),
            vec!["A.hash"]
        );
    }
}
