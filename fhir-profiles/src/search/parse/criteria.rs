//! One search parameter (`name[:modifier]`, chains, `_has`) and its value into a
//! [`Criterion`].

use std::cell::Cell;

use crate::outcome::{Issue, IssueType};
use crate::resource_types::is_hosted;
use crate::search::normalize::normalize_string;
use crate::search::query::{ChainTarget, Criterion, StringMode, SystemMatch, TokenMatch, UriMode};
use crate::search::registry::{self, param_key, ParamType, SearchParam};

use super::values::{self, fit, or_values, unescape};

/// How many chain links and `_has` steps one parameter may nest.
pub(super) const MAX_DEPTH: usize = 4;

/// How many criteria one parameter may expand to (a chain makes one per target type, at
/// every level), so a short name cannot make the parser and the query explode.
pub(super) const MAX_CRITERIA: usize = 64;

/// Modifiers R4 defines; others are reported as unknown rather than as misplaced.
const R4_MODIFIERS: &[&str] = &[
    "missing",
    "exact",
    "contains",
    "not",
    "text",
    "in",
    "not-in",
    "below",
    "above",
    "type",
    "identifier",
    "ofType",
    "of-type",
];

/// What the parameter is being parsed for: its name as the client wrote it (errors name it)
/// and the server's base URL (absolute references under it are local).
pub(super) struct Cx<'a> {
    name: &'a str,
    base: &'a str,
    /// Criteria this parameter may still expand to.
    budget: Cell<usize>,
}

/// Why a parameter could not be parsed.
#[derive(Debug)]
pub(super) enum Fault {
    /// The parameter name is not one of the searched type's (ignored when lenient).
    Unknown(Issue),
    /// Anything else: a bad modifier or value, a chain that leads nowhere.
    Bad(Issue),
}

impl<'a> Cx<'a> {
    pub(super) fn new(name: &'a str, base: &'a str) -> Self {
        Cx {
            name,
            base,
            budget: Cell::new(MAX_CRITERIA),
        }
    }

    /// A context allowing only `budget` criteria, to test the limit.
    #[cfg(test)]
    pub(super) fn with_budget(name: &'a str, base: &'a str, budget: usize) -> Self {
        Cx {
            budget: Cell::new(budget),
            ..Cx::new(name, base)
        }
    }

    fn bad(&self, code: IssueType, msg: impl std::fmt::Display) -> Fault {
        Fault::Bad(Issue::error(
            code,
            format!("search parameter '{}': {msg}", self.name),
        ))
    }

    fn invalid(&self, msg: impl std::fmt::Display) -> Fault {
        self.bad(IssueType::Invalid, msg)
    }

    /// A `Fault::Unknown` met below the top level: never ignorable.
    fn nested(&self, fault: Fault) -> Fault {
        match fault {
            Fault::Unknown(issue) => self.invalid(issue.diagnostics),
            bad => bad,
        }
    }
}

fn unknown(resource_type: &str, code: &str) -> Fault {
    Fault::Unknown(Issue::error(
        IssueType::Invalid,
        format!("unknown search parameter '{code}' for {resource_type}"),
    ))
}

/// Parses `name=value` as a criterion on `resource_type`; `Ok(None)` when the value is empty
/// (such a parameter is ignored).
pub(super) fn criterion(
    cx: &Cx,
    resource_type: &str,
    name: &str,
    value: &str,
    depth: usize,
) -> Result<Option<Criterion>, Fault> {
    if depth > MAX_DEPTH {
        return Err(cx.invalid(format_args!(
            "chains and _has may nest at most {MAX_DEPTH} levels"
        )));
    }
    match cx.budget.get().checked_sub(1) {
        Some(left) => cx.budget.set(left),
        None => {
            return Err(cx.bad(
                IssueType::TooCostly,
                format_args!("the chain expands to more than {MAX_CRITERIA} criteria"),
            ))
        }
    }
    if let Some(rest) = name.strip_prefix("_has:") {
        return has(cx, resource_type, rest, value, depth);
    }
    let (head, chained) = match name.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (name, None),
    };
    let (code, modifier) = match head.split_once(':') {
        Some((code, modifier)) => (code, Some(modifier)),
        None => (head, None),
    };
    if let Some(rest) = chained {
        return chain(cx, resource_type, code, modifier, rest, value, depth);
    }
    let values = or_values(value);
    match code {
        "_id" => {
            no_modifier(cx, code, modifier)?;
            let ids: Vec<String> = values
                .iter()
                .map(|v| unescape(v).trim().to_owned())
                .collect();
            return Ok((!ids.is_empty()).then_some(Criterion::Id { ids }));
        }
        "_lastUpdated" => {
            no_modifier(cx, code, modifier)?;
            let values = dates(cx, &values)?;
            return Ok((!values.is_empty()).then_some(Criterion::LastUpdated { values }));
        }
        _ => {}
    }
    let Some(param) = registry::param(resource_type, code) else {
        return Err(unknown(resource_type, code));
    };
    if matches!(
        param.kind,
        ParamType::Number | ParamType::Quantity | ParamType::Special
    ) {
        return Err(not_searchable(cx, param));
    }
    if values.is_empty() {
        // Still refuse a modifier that would be refused with a value.
        check_modifier(cx, resource_type, param, modifier)?;
        return Ok(None);
    }
    if modifier == Some("missing") {
        let missing = values::missing(&values).map_err(|e| cx.invalid(e))?;
        check_modifier(cx, resource_type, param, modifier)?;
        // Composite values are indexed as token rows under the composite's key.
        let kind = match param.kind {
            ParamType::Composite => ParamType::Token,
            kind => kind,
        };
        return Ok(Some(Criterion::Missing {
            key: param.key,
            kind,
            missing,
        }));
    }
    let criterion = match param.kind {
        ParamType::Token => token(cx, resource_type, param, modifier, &values)?,
        ParamType::Reference => reference(cx, resource_type, param, modifier, &values)?,
        ParamType::Date => {
            check_modifier(cx, resource_type, param, modifier)?;
            Criterion::Date {
                key: param.key,
                values: dates(cx, &values)?,
            }
        }
        ParamType::String => string(cx, resource_type, param, modifier, &values)?,
        ParamType::Uri => {
            let mode = match modifier {
                None => UriMode::Exact,
                Some("below") => UriMode::Below,
                Some("above") => UriMode::Above,
                Some(_) => {
                    check_modifier(cx, resource_type, param, modifier)?;
                    UriMode::Exact
                }
            };
            Criterion::Uri {
                key: param.key,
                mode,
                values: values.iter().map(|v| fit(unescape(v).trim())).collect(),
            }
        }
        ParamType::Composite => {
            check_modifier(cx, resource_type, param, modifier)?;
            let codes = values
                .iter()
                .map(|v| composite(cx, resource_type, param, v))
                .collect::<Result<Vec<_>, _>>()?;
            Criterion::Token {
                key: param.key,
                negated: false,
                values: codes
                    .into_iter()
                    .map(|code| TokenMatch {
                        system: SystemMatch::Any,
                        code: Some(code),
                    })
                    .collect(),
            }
        }
        ParamType::Number | ParamType::Quantity | ParamType::Special => {
            return Err(not_searchable(cx, param))
        }
    };
    Ok(Some(criterion))
}

/// Number, quantity and special parameters are not indexed, so not searchable.
fn not_searchable(cx: &Cx, param: &SearchParam) -> Fault {
    cx.bad(
        IssueType::NotSupported,
        format_args!(
            "{} parameters ('{}') are not supported",
            param.kind.code(),
            param.code
        ),
    )
}

fn no_modifier(cx: &Cx, code: &str, modifier: Option<&str>) -> Result<(), Fault> {
    match modifier {
        None => Ok(()),
        Some(m) => Err(cx.bad(
            IssueType::NotSupported,
            format_args!("modifier ':{m}' is not supported on {code}"),
        )),
    }
}

/// Accepts the modifiers valid for the parameter's type, refuses the rest with the fitting
/// issue.
fn check_modifier(
    cx: &Cx,
    resource_type: &str,
    param: &SearchParam,
    modifier: Option<&str>,
) -> Result<(), Fault> {
    let Some(m) = modifier else { return Ok(()) };
    let kind = param.kind;
    let allowed: &[&str] = match kind {
        ParamType::Token => &["missing", "not", "text", "of-type"],
        ParamType::Reference => &["missing", "identifier"],
        ParamType::Date | ParamType::Composite => &["missing"],
        ParamType::String => &["missing", "exact", "contains"],
        ParamType::Uri => &["missing", "below", "above"],
        ParamType::Number | ParamType::Quantity | ParamType::Special => &["missing"],
    };
    if allowed.contains(&m) {
        if m == "of-type" && !registry::identifier_valued(param) {
            return Err(cx.invalid(format_args!(
                "modifier ':of-type' applies to identifier parameters only, and '{}' of {resource_type} is not one",
                param.code
            )));
        }
        return Ok(());
    }
    if kind == ParamType::Reference && m.starts_with(|c: char| c.is_ascii_uppercase()) {
        if param.targets.iter().any(|t| t == m) {
            return Ok(());
        }
        return Err(cx.invalid(format_args!(
            "'{m}' is not a type reference parameter '{}' of {resource_type} can refer to ({})",
            param.code,
            param.targets.join(", ")
        )));
    }
    let supported_elsewhere = match kind {
        ParamType::Token => ["in", "not-in", "below", "above"].contains(&m),
        ParamType::Reference => ["above", "below", "type"].contains(&m),
        _ => false,
    };
    if supported_elsewhere {
        return Err(cx.bad(
            IssueType::NotSupported,
            format_args!(
                "modifier ':{m}' on {} parameter '{}' is not supported",
                kind.code(),
                param.code
            ),
        ));
    }
    if R4_MODIFIERS.contains(&m) {
        return Err(cx.invalid(format_args!(
            "modifier ':{m}' does not apply to {} parameter '{}'",
            kind.code(),
            param.code
        )));
    }
    Err(cx.invalid(format_args!(
        "unknown modifier ':{m}' on {} parameter '{}'",
        kind.code(),
        param.code
    )))
}

fn dates(cx: &Cx, values: &[&str]) -> Result<Vec<crate::search::query::DateMatch>, Fault> {
    values
        .iter()
        .map(|v| values::date(v).map_err(|e| cx.invalid(e)))
        .collect()
}

fn tokens(
    cx: &Cx,
    values: &[&str],
    parse: fn(&str) -> Result<TokenMatch, String>,
) -> Result<Vec<TokenMatch>, Fault> {
    values
        .iter()
        .map(|v| parse(v).map_err(|e| cx.invalid(e)))
        .collect()
}

fn token(
    cx: &Cx,
    resource_type: &str,
    param: &SearchParam,
    modifier: Option<&str>,
    values: &[&str],
) -> Result<Criterion, Fault> {
    check_modifier(cx, resource_type, param, modifier)?;
    Ok(match modifier {
        Some("text") => Criterion::TokenText {
            key: param.key,
            values: values
                .iter()
                .map(|v| fit(&normalize_string(&unescape(v))))
                .collect(),
        },
        Some("of-type") => Criterion::Token {
            key: param_key(resource_type, &format!("{}:of-type", param.code)),
            negated: false,
            values: tokens(cx, values, values::of_type)?,
        },
        negated => Criterion::Token {
            key: param.key,
            negated: negated == Some("not"),
            values: tokens(cx, values, values::token)?,
        },
    })
}

fn reference(
    cx: &Cx,
    resource_type: &str,
    param: &SearchParam,
    modifier: Option<&str>,
    values: &[&str],
) -> Result<Criterion, Fault> {
    check_modifier(cx, resource_type, param, modifier)?;
    if modifier == Some("identifier") {
        return Ok(Criterion::Token {
            key: param_key(resource_type, &format!("{}:identifier", param.code)),
            negated: false,
            values: tokens(cx, values, values::token)?,
        });
    }
    let values = values
        .iter()
        .map(|v| values::reference(v, modifier, &param.targets, cx.base).map_err(|e| cx.invalid(e)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Criterion::Reference {
        key: param.key,
        values,
    })
}

fn string(
    cx: &Cx,
    resource_type: &str,
    param: &SearchParam,
    modifier: Option<&str>,
    values: &[&str],
) -> Result<Criterion, Fault> {
    check_modifier(cx, resource_type, param, modifier)?;
    let mode = match modifier {
        Some("exact") => StringMode::Exact,
        Some("contains") => StringMode::Contains,
        _ => StringMode::Prefix,
    };
    let values = values
        .iter()
        .map(|v| {
            let text = unescape(v);
            match mode {
                StringMode::Exact => fit(&text),
                StringMode::Prefix | StringMode::Contains => fit(&normalize_string(&text)),
            }
        })
        .collect();
    Ok(Criterion::String {
        key: param.key,
        mode,
        values,
    })
}

/// One composite value (`relation$reference`) as the code its index rows carry: the
/// components in normalized form joined by `$`.
fn composite(
    cx: &Cx,
    resource_type: &str,
    param: &SearchParam,
    raw: &str,
) -> Result<String, Fault> {
    let parts = values::split_unescaped(raw, '$');
    if parts.len() != param.components.len() || param.components.is_empty() {
        let codes: Vec<&str> = param.components.iter().map(|c| c.code.as_str()).collect();
        return Err(cx.invalid(format_args!(
            "'{raw}' does not have the {} components of '{}' ({})",
            codes.len(),
            param.code,
            codes.join("$")
        )));
    }
    let mut out = Vec::with_capacity(parts.len());
    for (part, component) in parts.iter().zip(&param.components) {
        if part.trim().is_empty() {
            return Err(cx.invalid(format_args!(
                "component '{}' of '{raw}' is empty",
                component.code
            )));
        }
        let inner = registry::param(resource_type, &component.code);
        let text = match inner.map(|p| p.kind) {
            Some(ParamType::Token) | None => {
                let token = values::token(part).map_err(|e| cx.invalid(e))?;
                token.code.ok_or_else(|| {
                    cx.invalid(format_args!(
                        "component '{}' of '{raw}' needs a code",
                        component.code
                    ))
                })?
            }
            Some(ParamType::Reference) => {
                let targets = inner.map(|p| p.targets.as_slice()).unwrap_or_default();
                let reference =
                    values::reference(part, None, targets, cx.base).map_err(|e| cx.invalid(e))?;
                values::reference_text(&reference)
            }
            Some(ParamType::String) => normalize_string(&unescape(part)),
            Some(_) => unescape(part).trim().to_owned(),
        };
        out.push(text);
    }
    Ok(fit(&out.join("$")))
}

/// `code[:Type].rest=value`: the reference `code` points to a resource that matches `rest`.
fn chain(
    cx: &Cx,
    resource_type: &str,
    code: &str,
    modifier: Option<&str>,
    rest: &str,
    value: &str,
    depth: usize,
) -> Result<Option<Criterion>, Fault> {
    let Some(param) = registry::param(resource_type, code) else {
        return Err(unknown(resource_type, code));
    };
    if param.kind != ParamType::Reference {
        return Err(cx.invalid(format_args!(
            "only reference parameters can be chained, and '{code}' of {resource_type} is a {} parameter",
            param.kind.code()
        )));
    }
    if rest.is_empty() {
        return Err(cx.invalid(format_args!("nothing is chained after '{code}.'")));
    }
    let candidates: Vec<&str> = match modifier {
        None => param
            .targets
            .iter()
            .map(String::as_str)
            .filter(|t| is_hosted(t))
            .collect(),
        Some(m) if param.targets.iter().any(|t| t == m) => {
            if !is_hosted(m) {
                return Err(cx.bad(
                    IssueType::NotSupported,
                    format_args!("{m} resources are not hosted here, so they cannot be chained to"),
                ));
            }
            vec![m]
        }
        Some(m) => {
            return Err(cx.invalid(format_args!(
            "'{m}' is not a type reference parameter '{code}' of {resource_type} can refer to ({})",
            param.targets.join(", ")
        )))
        }
    };
    let mut targets = Vec::new();
    for target in &candidates {
        match criterion(cx, target, rest, value, depth + 1) {
            Ok(Some(criterion)) => targets.push(ChainTarget {
                resource_type: (*target).to_owned(),
                criterion: Box::new(criterion),
            }),
            Ok(None) => return Ok(None),
            Err(Fault::Unknown(_)) => {}
            Err(bad) => return Err(bad),
        }
    }
    if targets.is_empty() {
        let inner = rest.split(['.', ':']).next().unwrap_or(rest);
        return Err(cx.invalid(format_args!(
            "'{inner}' is not a search parameter of any type '{code}' of {resource_type} refers to ({})",
            candidates.join(", ")
        )));
    }
    Ok(Some(Criterion::Chain {
        key: param.key,
        targets,
    }))
}

/// `_has:Source:param:rest=value` (after `_has:`).
fn has(
    cx: &Cx,
    resource_type: &str,
    spec: &str,
    value: &str,
    depth: usize,
) -> Result<Option<Criterion>, Fault> {
    let mut parts = spec.splitn(3, ':');
    let (Some(source), Some(code), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(cx.invalid("expected _has:Type:parameter:criterion"));
    };
    if source.is_empty() || code.is_empty() || rest.is_empty() {
        return Err(cx.invalid("expected _has:Type:parameter:criterion"));
    }
    if !is_hosted(source) {
        return Err(cx.invalid(format_args!(
            "'{source}' in _has is not a resource type this server hosts"
        )));
    }
    let Some(param) = registry::param(source, code) else {
        return Err(cx.invalid(format_args!(
            "unknown search parameter '{code}' for {source}"
        )));
    };
    if param.kind != ParamType::Reference {
        return Err(cx.invalid(format_args!(
            "'{code}' of {source} is a {} parameter; _has needs a reference parameter",
            param.kind.code()
        )));
    }
    if !param.targets.iter().any(|t| t == resource_type) {
        return Err(cx.invalid(format_args!(
            "'{code}' of {source} cannot refer to {resource_type}"
        )));
    }
    let inner = criterion(cx, source, rest, value, depth + 1).map_err(|f| cx.nested(f))?;
    Ok(inner.map(|criterion| Criterion::Has {
        source_type: source.to_owned(),
        key: param.key,
        criterion: Box::new(criterion),
    }))
}
