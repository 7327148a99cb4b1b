//! Parsing a search request's parameters into a [`SearchRequest`].
//!
//! Choices beyond the R4 text:
//! - A parameter whose value is empty (or only commas and blanks) is ignored, as most
//!   servers do (result parameters too); empty values inside an OR list are skipped.
//! - `_count`, `_sort`, `_total`, `_summary` and `_cursor` may be given once; `_elements`
//!   lists are merged.
//! - `_revinclude=*` is not supported (name the source type: `_revinclude=Type:*`).
//! - Chains and `_has` nest at most [`criteria::MAX_DEPTH`] levels, and one parameter
//!   expands to at most [`criteria::MAX_CRITERIA`] criteria (a chain makes one per target
//!   type); beyond that the parameter is refused as too costly.
//! - `link_params` keep each understood parameter as the client wrote it (already decoded),
//!   except `_count`, which shows the page size actually served.

mod criteria;
mod values;

#[cfg(test)]
mod tests;

use crate::outcome::{Issue, IssueType};
use crate::resource_types::is_hosted;
use crate::search::query::{
    Include, SearchRequest, SortField, SortKey, TotalMode, CURSOR_PARAM, MAX_COUNT,
};
use crate::search::registry::{self, ParamType, SearchParam};
use crate::summary::SummaryMode;

use criteria::{Cx, Fault};

/// R4 parameters this server does not implement.
const NOT_SUPPORTED: &[&str] = &[
    "_text",
    "_content",
    "_list",
    "_query",
    "_filter",
    "_type",
    "_contained",
    "_containedType",
];

/// Result parameters that may appear only once.
const ONCE: &[&str] = &["_count", "_sort", "_total", "_summary", CURSOR_PARAM];

/// Parses the parameters of a search on `resource_type` (decoded name/value pairs, in
/// order). `fhir_base` recognises absolute references to this server; with `lenient`,
/// unknown parameters are ignored (and listed in `ignored`) instead of refused. Errors
/// name the offending parameter.
pub fn parse_search(
    resource_type: &str,
    params: &[(String, String)],
    fhir_base: &str,
    lenient: bool,
) -> Result<SearchRequest, Vec<Issue>> {
    let mut request = SearchRequest::new(resource_type);
    let base = fhir_base.trim_end_matches('/');
    let mut issues = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in params {
        let code = name.split([':', '.']).next().unwrap_or(name);
        let modifier = name.strip_prefix(code).and_then(|m| m.strip_prefix(':'));
        let mut link_value = value.clone();
        let invalid = |msg: String| Issue::error(IssueType::Invalid, msg);

        let result_param = matches!(
            code,
            "_count"
                | "_sort"
                | "_total"
                | "_summary"
                | "_elements"
                | "_cursor"
                | "_format"
                | "_pretty"
        );
        if result_param && name != code {
            issues.push(invalid(format!(
                "parameter '{name}': '{code}' takes no modifier"
            )));
            continue;
        }
        if (result_param || code == "_include" || code == "_revinclude") && value.trim().is_empty()
        {
            // Empty, like an empty criterion: ignored.
            continue;
        }
        if ONCE.contains(&code) {
            if seen.contains(&code) {
                issues.push(invalid(format!(
                    "parameter '{code}' may be given only once"
                )));
                continue;
            }
            seen.push(code);
        }
        match code {
            "_count" => match parse_count(value) {
                Some(count) => {
                    request.count = count;
                    link_value = count.to_string();
                }
                None => issues.push(invalid(format!(
                    "parameter '_count': '{value}' is not a non-negative integer"
                ))),
            },
            "_sort" => match parse_sort(resource_type, value) {
                Ok(keys) => request.sort = keys,
                Err(mut errs) => issues.append(&mut errs),
            },
            "_total" => match value.trim() {
                "none" => request.total = Some(TotalMode::None),
                "estimate" => request.total = Some(TotalMode::Estimate),
                "accurate" => request.total = Some(TotalMode::Accurate),
                other => issues.push(invalid(format!(
                    "parameter '_total': '{other}' is not none, estimate or accurate"
                ))),
            },
            "_summary" => match value.trim().parse::<SummaryMode>() {
                Ok(mode) => request.summary = Some(mode),
                Err(e) => issues.push(invalid(format!("parameter '_summary': {e}"))),
            },
            "_elements" => {
                let elements = request.elements.get_or_insert_with(Vec::new);
                elements.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|e| !e.is_empty())
                        .map(str::to_owned),
                );
            }
            "_cursor" => request.cursor = Some(value.clone()),
            "_format" | "_pretty" => {}
            "_include" | "_revinclude" => {
                let iterate = match modifier {
                    None => false,
                    Some("iterate" | "recurse") => true,
                    Some(m) => {
                        issues.push(invalid(format!(
                            "parameter '{name}': unknown modifier ':{m}' (expected :iterate)"
                        )));
                        continue;
                    }
                };
                let reverse = code == "_revinclude";
                match parse_include(resource_type, name, value, reverse, iterate) {
                    Ok(include) if reverse => request.revincludes.push(include),
                    Ok(include) => request.includes.push(include),
                    Err(issue) => issues.push(issue),
                }
            }
            _ if NOT_SUPPORTED.contains(&code) => {
                if lenient {
                    request.ignored.push(name.clone());
                } else {
                    issues.push(Issue::error(
                        IssueType::NotSupported,
                        format!("search parameter '{code}' is not supported"),
                    ));
                }
                continue;
            }
            _ => {
                let cx = Cx::new(name, base);
                match criteria::criterion(&cx, resource_type, name, value, 0) {
                    Ok(Some(criterion)) => request.criteria.push(criterion),
                    // An empty value: ignored, and left out of the links too.
                    Ok(None) => continue,
                    Err(Fault::Unknown(_)) if lenient => {
                        request.ignored.push(name.clone());
                        continue;
                    }
                    Err(Fault::Unknown(issue) | Fault::Bad(issue)) => issues.push(issue),
                }
            }
        }
        if code != CURSOR_PARAM {
            request.link_params.push((name.clone(), link_value));
        }
    }
    // A rejected parameter may have left its link behind; the request fails anyway.
    if issues.is_empty() {
        Ok(request)
    } else {
        Err(issues)
    }
}

/// `_count`: a non-negative integer, lowered to [`MAX_COUNT`].
fn parse_count(value: &str) -> Option<usize> {
    let digits = value.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        digits
            .parse::<usize>()
            .map_or(MAX_COUNT, |n| n.min(MAX_COUNT)),
    )
}

/// `_sort=key,-key`: `_id`, `_lastUpdated`, or a date, string, token or uri parameter.
fn parse_sort(resource_type: &str, value: &str) -> Result<Vec<SortKey>, Vec<Issue>> {
    let mut keys = Vec::new();
    let mut issues = Vec::new();
    for part in value.split(',').map(str::trim) {
        let (descending, code) = match part.strip_prefix('-') {
            Some(code) => (true, code),
            None => (false, part),
        };
        let field = match code {
            "" => {
                issues.push(Issue::error(
                    IssueType::Invalid,
                    format!("parameter '_sort': empty sort key in '{value}'"),
                ));
                continue;
            }
            "_id" => SortField::Id,
            "_lastUpdated" => SortField::LastUpdated,
            _ => match registry::param(resource_type, code) {
                Some(p)
                    if matches!(
                        p.kind,
                        ParamType::Date | ParamType::String | ParamType::Token | ParamType::Uri
                    ) =>
                {
                    SortField::Param {
                        key: p.key,
                        kind: p.kind,
                    }
                }
                Some(p) => {
                    issues.push(Issue::error(
                        IssueType::NotSupported,
                        format!(
                            "parameter '_sort': sorting by {} parameter '{code}' is not supported",
                            p.kind.code()
                        ),
                    ));
                    continue;
                }
                None => {
                    issues.push(Issue::error(
                        IssueType::Invalid,
                        format!(
                            "parameter '_sort': unknown search parameter '{code}' for {resource_type}"
                        ),
                    ));
                    continue;
                }
            },
        };
        keys.push(SortKey { field, descending });
    }
    if issues.is_empty() {
        Ok(keys)
    } else {
        Err(issues)
    }
}

/// `_include[:iterate]=Source:param[:Target]` (or `Source:*`, or `*` for every reference of
/// the searched type); `_revinclude` alike.
fn parse_include(
    resource_type: &str,
    name: &str,
    value: &str,
    reverse: bool,
    iterate: bool,
) -> Result<Include, Issue> {
    let invalid =
        |msg: String| Issue::error(IssueType::Invalid, format!("parameter '{name}': {msg}"));
    let value = value.trim();
    let parts: Vec<&str> = if value == "*" {
        if reverse {
            return Err(Issue::error(
                IssueType::NotSupported,
                format!("parameter '{name}': '*' is not supported; name the type, as in Type:*"),
            ));
        }
        vec![resource_type, "*"]
    } else {
        value.split(':').collect()
    };
    let (source, code, target) = match parts.as_slice() {
        [s, c] if !s.is_empty() && !c.is_empty() => (*s, *c, None),
        [s, c, t] if !s.is_empty() && !c.is_empty() && !t.is_empty() => (*s, *c, Some(*t)),
        _ => {
            return Err(invalid(format!(
                "'{value}' is not Type:parameter[:targetType]"
            )))
        }
    };
    if !is_hosted(source) {
        return Err(invalid(format!(
            "'{source}' is not a resource type this server hosts"
        )));
    }
    if !reverse && !iterate && source != resource_type {
        return Err(invalid(format!(
            "'{value}' does not start from {resource_type} (use {name}:iterate to follow included resources)"
        )));
    }
    // A reverse include must be able to point at the searched type, unless it iterates
    // from resources already included.
    let reaches =
        |p: &SearchParam| !reverse || iterate || p.targets.iter().any(|t| t == resource_type);
    let chosen: Vec<&SearchParam> = if code == "*" {
        registry::params(source)
            .iter()
            .filter(|p| p.kind == ParamType::Reference && reaches(p))
            .collect()
    } else {
        match registry::param(source, code) {
            Some(p) if p.kind == ParamType::Reference => {
                if !reaches(p) {
                    return Err(invalid(format!(
                        "'{code}' of {source} cannot refer to {resource_type}"
                    )));
                }
                vec![p]
            }
            Some(p) => {
                return Err(invalid(format!(
                    "'{code}' of {source} is a {} parameter, not a reference",
                    p.kind.code()
                )))
            }
            None => {
                return Err(invalid(format!(
                    "unknown search parameter '{code}' for {source}"
                )))
            }
        }
    };
    if chosen.is_empty() {
        return Err(invalid(format!(
            "{source} has no reference parameter to follow"
        )));
    }
    if let Some(t) = target {
        if !chosen.iter().any(|p| p.targets.iter().any(|x| x == t)) {
            return Err(invalid(format!(
                "'{t}' is not a type '{code}' of {source} can refer to"
            )));
        }
        if reverse && !iterate && t != resource_type {
            return Err(invalid(format!(
                "'{t}' is not the searched type {resource_type}"
            )));
        }
    }
    Ok(Include {
        source_type: source.to_owned(),
        keys: chosen.iter().map(|p| p.key).collect(),
        target_type: target.map(str::to_owned),
        iterate,
    })
}
