//! Parsing of single search values: escaping (R4 3.1.1.1.8), tokens, dates with their
//! prefixes, and references.

use crate::resource_types::is_r4_resource_type;
use crate::search::date::parse_range;
use crate::search::normalize::truncate_for_index;
use crate::search::query::{DateMatch, Prefix, ReferenceMatch, SystemMatch, TokenMatch};

/// Splits `s` on every `sep` not preceded by an escaping backslash. The pieces keep their
/// escapes, so they can be split again on another separator before [`unescape`].
pub(super) fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            pieces.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    pieces.push(&s[start..]);
    pieces
}

/// Removes the escapes of `\,`, `\$`, `\|` and `\\`; any other backslash is kept as written.
pub(super) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next @ (',' | '$' | '|' | '\\')) = chars.peek() {
                out.push(next);
                chars.next();
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// The OR-ed values of a parameter (split on unescaped commas, escapes kept); empty and
/// blank ones are left out, so a parameter without any value is ignored.
pub(super) fn or_values(s: &str) -> Vec<&str> {
    split_unescaped(s, ',')
        .into_iter()
        .filter(|v| !v.trim().is_empty())
        .collect()
}

/// A value compared to stored index text, cut the way the index cuts it.
pub(super) fn fit(s: &str) -> String {
    truncate_for_index(s).to_owned()
}

/// `true` or `false` for `:missing`.
pub(super) fn missing(values: &[&str]) -> Result<bool, String> {
    match values {
        [v] if v.trim() == "true" => Ok(true),
        [v] if v.trim() == "false" => Ok(false),
        _ => Err("the value of :missing must be 'true' or 'false'".into()),
    }
}

/// `code`, `system|code`, `|code` or `system|` (escapes still in `raw`).
pub(super) fn token(raw: &str) -> Result<TokenMatch, String> {
    let malformed = || format!("'{raw}' is not a token ([system]|[code])");
    match split_unescaped(raw, '|').as_slice() {
        [code] => Ok(TokenMatch {
            system: SystemMatch::Any,
            code: Some(fit(&unescape(code))),
        }),
        [system, code] => {
            let system = unescape(system);
            let code = unescape(code);
            match (system.is_empty(), code.is_empty()) {
                (true, true) => Err(malformed()),
                (true, false) => Ok(TokenMatch {
                    system: SystemMatch::NoSystem,
                    code: Some(fit(&code)),
                }),
                (false, true) => Ok(TokenMatch {
                    system: SystemMatch::Is(fit(&system)),
                    code: None,
                }),
                (false, false) => Ok(TokenMatch {
                    system: SystemMatch::Is(fit(&system)),
                    code: Some(fit(&code)),
                }),
            }
        }
        _ => Err(malformed()),
    }
}

/// `system|code|value` of `:of-type`: the type's coding system and `"code|value"`.
pub(super) fn of_type(raw: &str) -> Result<TokenMatch, String> {
    match split_unescaped(raw, '|').as_slice() {
        [system, code, value] => {
            let (system, code, value) = (unescape(system), unescape(code), unescape(value));
            if code.is_empty() || value.is_empty() {
                return Err(format!(
                    "'{raw}' is not an identifier type and value (system|code|value)"
                ));
            }
            Ok(TokenMatch {
                system: if system.is_empty() {
                    SystemMatch::NoSystem
                } else {
                    SystemMatch::Is(fit(&system))
                },
                code: Some(fit(&format!("{code}|{value}"))),
            })
        }
        _ => Err(format!(
            "'{raw}' is not an identifier type and value (system|code|value)"
        )),
    }
}

/// A date value with an optional prefix (`ge2020-01-01`).
pub(super) fn date(raw: &str) -> Result<DateMatch, String> {
    let text = unescape(raw);
    let text = text.trim();
    let (prefix, rest) = match text.get(..2) {
        Some(p) if p.bytes().all(|b| b.is_ascii_alphabetic()) => {
            let prefix = match p {
                "eq" => Prefix::Eq,
                "ne" => Prefix::Ne,
                "lt" => Prefix::Lt,
                "gt" => Prefix::Gt,
                "le" => Prefix::Le,
                "ge" => Prefix::Ge,
                "sa" => Prefix::Sa,
                "eb" => Prefix::Eb,
                "ap" => Prefix::Ap,
                other => {
                    return Err(format!(
                        "unknown prefix '{other}' in '{text}' (expected eq, ne, lt, gt, le, ge, sa, eb or ap)"
                    ))
                }
            };
            (prefix, &text[2..])
        }
        _ => (Prefix::Eq, text),
    };
    // A `+` of a time zone offset turns into a space when a client forgets to
    // percent-encode it in a query string.
    let repaired;
    let rest = if rest.contains('T') && rest.contains(' ') {
        repaired = rest.replace(' ', "+");
        repaired.as_str()
    } else {
        rest
    };
    parse_range(rest)
        .map(|range| DateMatch { prefix, range })
        .ok_or_else(|| format!("'{text}' is not a date, dateTime or instant"))
}

/// A reference value: `Type/id`, a bare `id`, `Type/id/_history/n` (the version is not
/// searched), an absolute URL under `base` (local), or any other absolute URL or URN.
/// `type_modifier` is the `:Type` of `subject:Patient=…`; a bare id takes that type, else
/// the only type in `targets`, else none.
pub(super) fn reference(
    raw: &str,
    type_modifier: Option<&str>,
    targets: &[String],
    base: &str,
) -> Result<ReferenceMatch, String> {
    let text = unescape(raw);
    let text = text.trim();
    let local = if base.is_empty() {
        None
    } else {
        text.strip_prefix(base).and_then(|r| r.strip_prefix('/'))
    };
    if let Some(rest) = local {
        return Ok(match relative(rest) {
            Some((Some(t), id)) if type_modifier.is_none_or(|m| m == t) => ReferenceMatch::Local {
                resource_type: Some(t.to_owned()),
                id: fit(id),
            },
            Some((Some(t), _)) => {
                return Err(format!(
                    "'{text}' refers to a {t}, not a {}",
                    type_modifier.unwrap_or_default()
                ))
            }
            // Anything else under our base (`{base}/metadata`) is compared as written.
            _ => ReferenceMatch::Url(fit(text)),
        });
    }
    if text.contains("://") || text.starts_with("urn:") {
        return Ok(ReferenceMatch::Url(fit(text)));
    }
    match relative(text) {
        Some((Some(t), id)) => {
            if let Some(m) = type_modifier.filter(|m| *m != t) {
                return Err(format!("'{text}' refers to a {t}, not a {m}"));
            }
            Ok(ReferenceMatch::Local {
                resource_type: Some(t.to_owned()),
                id: fit(id),
            })
        }
        Some((None, id)) => {
            let resource_type = match (type_modifier, targets) {
                (Some(m), _) => Some(m.to_owned()),
                (None, [only]) => Some(only.clone()),
                _ => None,
            };
            Ok(ReferenceMatch::Local {
                resource_type,
                id: fit(id),
            })
        }
        None => Err(format!(
            "'{text}' is not a reference (Type/id, id or an absolute URL)"
        )),
    }
}

/// `id`, `Type/id` or `Type/id/_history/version` split into type and id.
fn relative(s: &str) -> Option<(Option<&str>, &str)> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [id] if !id.is_empty() => Some((None, id)),
        [t, id] | [t, id, "_history", _] if is_r4_resource_type(t) && !id.is_empty() => {
            Some((Some(t), id))
        }
        _ => None,
    }
}

/// A reference as a composite component stores it: `Type/id`, or the URL (or a bare id
/// of unknown type) as written.
pub(super) fn reference_text(m: &ReferenceMatch) -> String {
    match m {
        ReferenceMatch::Local {
            resource_type: Some(t),
            id,
        } => format!("{t}/{id}"),
        ReferenceMatch::Local {
            resource_type: None,
            id,
        } => id.clone(),
        ReferenceMatch::Url(u) => u.clone(),
    }
}
