//! Problems found in a request, and their rendering as a FHIR OperationOutcome.

use serde_json::{json, Map, Value};

/// OperationOutcome.issue.severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    /// The FHIR code (`fatal`, `error`, `warning`, `information`).
    pub fn code(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// FHIR IssueType codes we use (serialise to the FHIR code: "invalid", "structure", "required",
/// "value", "invariant", "not-found", "deleted", "conflict", "not-supported", "too-costly",
/// "processing", "exception", "informational", "code-invalid", "security", "forbidden", "login",
/// "duplicate", "multiple-matches", "too-long").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    NotFound,
    Deleted,
    Conflict,
    NotSupported,
    TooCostly,
    Processing,
    Exception,
    Informational,
    CodeInvalid,
    Security,
    Forbidden,
    Login,
    Duplicate,
    MultipleMatches,
    TooLong,
    /// A temporary failure: the same request may succeed later.
    Transient,
}

impl IssueType {
    /// The FHIR code from the issue-type value set.
    pub fn code(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Structure => "structure",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::Invariant => "invariant",
            IssueType::NotFound => "not-found",
            IssueType::Deleted => "deleted",
            IssueType::Conflict => "conflict",
            IssueType::NotSupported => "not-supported",
            IssueType::TooCostly => "too-costly",
            IssueType::Processing => "processing",
            IssueType::Exception => "exception",
            IssueType::Informational => "informational",
            IssueType::CodeInvalid => "code-invalid",
            IssueType::Security => "security",
            IssueType::Forbidden => "forbidden",
            IssueType::Login => "login",
            IssueType::Duplicate => "duplicate",
            IssueType::MultipleMatches => "multiple-matches",
            IssueType::TooLong => "too-long",
            IssueType::Transient => "transient",
        }
    }
}

/// One problem (or note), located by FHIRPath expressions where that is known.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueType,
    pub diagnostics: String,
    pub expression: Vec<String>,
}

impl Issue {
    /// An error of the given type.
    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: Vec::new(),
        }
    }

    /// An advisory that does not reject the request.
    pub fn warning(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Warning,
            ..Issue::error(code, diagnostics)
        }
    }

    /// Adds a FHIRPath expression saying where the issue is.
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression.push(expression.into());
        self
    }

    /// An informational note (code `informational`).
    pub fn information(diagnostics: impl Into<String>) -> Self {
        Issue {
            severity: Severity::Information,
            code: IssueType::Informational,
            diagnostics: diagnostics.into(),
            expression: Vec::new(),
        }
    }

    /// True for Fatal and Error.
    pub fn is_error(&self) -> bool {
        matches!(self.severity, Severity::Fatal | Severity::Error)
    }

    fn to_json(&self) -> Value {
        let mut issue = Map::new();
        issue.insert("severity".into(), json!(self.severity.code()));
        issue.insert("code".into(), json!(self.code.code()));
        // FHIR strings must not be empty, so blank text is left out rather than sent as "".
        if !self.diagnostics.trim().is_empty() {
            issue.insert("diagnostics".into(), json!(fhir_string(&self.diagnostics)));
        }
        let expressions: Vec<String> = self
            .expression
            .iter()
            .filter(|e| !e.trim().is_empty())
            .map(|e| fhir_string(e))
            .collect();
        if !expressions.is_empty() {
            issue.insert("expression".into(), json!(expressions));
        }
        Value::Object(issue)
    }
}

/// `text` as a FHIR string may hold it: control characters other than tab,
/// line feed and carriage return (which FHIR strings and XML 1.0 both
/// refuse), and DEL, U+FFFE and U+FFFF, written out as `\u{…}`. Diagnostics often quote what a client
/// sent, and an outcome that could not be rendered in XML would reach an XML
/// client as JSON.
pub fn fhir_string(text: &str) -> String {
    if !text.chars().any(is_forbidden) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if is_forbidden(c) {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn is_forbidden(c: char) -> bool {
    (c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
        || c == '\u{7f}'
        || c == '\u{fffe}'
        || c == '\u{ffff}'
}

/// Renders a FHIR OperationOutcome resource (JSON value) from issues (at least one issue; if
/// empty, renders one informational "All OK").
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let rendered: Vec<Value> = if issues.is_empty() {
        vec![Issue::information("All OK").to_json()]
    } else {
        issues.iter().map(Issue::to_json).collect()
    };
    json!({"resourceType": "OperationOutcome", "issue": rendered})
}

/// True if any issue is Fatal or Error.
pub fn has_errors(issues: &[Issue]) -> bool {
    issues.iter().any(Issue::is_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_a_client_sent_are_written_out() {
        let oo = operation_outcome(&[Issue::error(
            IssueType::Structure,
            "unknown element 'act\u{10}ive'\tline 1",
        )
        .at("Patient.act\u{0}ive")]);
        assert_eq!(
            oo["issue"][0]["diagnostics"],
            "unknown element 'act\\u{10}ive'\tline 1"
        );
        assert_eq!(oo["issue"][0]["expression"][0], "Patient.act\\u{0}ive");
    }

    #[test]
    fn renders_issues_with_codes_and_expressions() {
        let oo = operation_outcome(&[
            Issue::error(IssueType::CodeInvalid, "bad code").at("DocumentReference.status"),
            Issue::warning(IssueType::Value, "hmm"),
        ]);
        assert_eq!(
            oo,
            json!({"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "code-invalid", "diagnostics": "bad code",
                 "expression": ["DocumentReference.status"]},
                {"severity": "warning", "code": "value", "diagnostics": "hmm"}
            ]})
        );
    }

    #[test]
    fn empty_issues_render_all_ok() {
        let oo = operation_outcome(&[]);
        assert_eq!(oo["issue"][0]["severity"], "information");
        assert_eq!(oo["issue"][0]["code"], "informational");
        assert_eq!(oo["issue"][0]["diagnostics"], "All OK");
    }

    #[test]
    fn errors_are_detected() {
        assert!(!has_errors(&[Issue::information("x")]));
        assert!(has_errors(&[Issue::error(IssueType::Invalid, "x")]));
        let fatal = Issue {
            severity: Severity::Fatal,
            ..Issue::information("x")
        };
        assert!(has_errors(&[fatal]));
    }

    #[test]
    fn every_issue_type_has_its_fhir_code() {
        let all = [
            (IssueType::Invalid, "invalid"),
            (IssueType::Structure, "structure"),
            (IssueType::Required, "required"),
            (IssueType::Value, "value"),
            (IssueType::Invariant, "invariant"),
            (IssueType::NotFound, "not-found"),
            (IssueType::Deleted, "deleted"),
            (IssueType::Conflict, "conflict"),
            (IssueType::NotSupported, "not-supported"),
            (IssueType::TooCostly, "too-costly"),
            (IssueType::Processing, "processing"),
            (IssueType::Exception, "exception"),
            (IssueType::Informational, "informational"),
            (IssueType::CodeInvalid, "code-invalid"),
            (IssueType::Security, "security"),
            (IssueType::Forbidden, "forbidden"),
            (IssueType::Login, "login"),
            (IssueType::Duplicate, "duplicate"),
            (IssueType::MultipleMatches, "multiple-matches"),
            (IssueType::TooLong, "too-long"),
            (IssueType::Transient, "transient"),
        ];
        for (t, code) in all {
            assert_eq!(t.code(), code);
        }
    }
}
