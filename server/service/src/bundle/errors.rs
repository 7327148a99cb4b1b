//! Errors about one entry, located at `Bundle.entry[i]` so that a client
//! can tell which entry of a Bundle failed and where.

use crate::Status;
use fhir_profiles::outcome::{Issue, IssueType};

use crate::error::ServiceError;

/// A 400 about an element of an entry (`request.url`, `fullUrl`, ...);
/// [`at_entry`] prefixes `at` with the entry.
pub(super) fn entry_error(message: impl Into<String>, at: &str) -> ServiceError {
    ServiceError::with_issues(
        Status::BAD_REQUEST,
        vec![Issue::error(IssueType::Invalid, message).at(at)],
    )
}

/// Locates the issues of an entry's error at `Bundle.entry[i]`: expressions
/// about its resource (`Patient.name`) become `Bundle.entry[i].resource.name`,
/// those about the entry (`request.url`) `Bundle.entry[i].request.url`.
pub(super) fn at_entry(mut e: ServiceError, i: usize, rt: Option<&str>) -> ServiceError {
    let entry = format!("Bundle.entry[{i}]");
    for issue in &mut e.issues {
        let expressions: Vec<String> = issue
            .expression
            .iter()
            .filter(|x| !x.is_empty())
            .map(|x| {
                if x.starts_with("Bundle.entry[") {
                    return x.clone();
                }
                if x == "resourceType" {
                    return format!("{entry}.resource.resourceType");
                }
                if let Some(rt) = rt {
                    if let Some(rest) = x.strip_prefix(rt) {
                        if rest.is_empty() || rest.starts_with('.') || rest.starts_with('[') {
                            return format!("{entry}.resource{rest}");
                        }
                    }
                }
                if x.starts_with(|c: char| c.is_ascii_uppercase()) {
                    // Another resource type's path: the entry's resource.
                    let rest = x.find(['.', '[']).map(|p| &x[p..]).unwrap_or("");
                    return format!("{entry}.resource{rest}");
                }
                format!("{entry}.{x}")
            })
            .collect();
        issue.expression = if expressions.is_empty() {
            vec![entry.clone()]
        } else {
            expressions
        };
    }
    e
}
