//! Search criteria as SQL predicates over a `resources` row. Each criterion becomes an
//! `EXISTS` over one index table, which PostgreSQL turns into a semi-join: it either drives
//! the search from that table's value index or probes it for each candidate.

use chrono::{Duration, Utc};
use fhir_profiles::search::query::{
    Criterion, DateMatch, Prefix, ReferenceMatch, StringMode, SystemMatch, TokenMatch, UriMode,
};
use fhir_profiles::search::{DateRange, ParamType};

use crate::search::binds::{like_escape, Bind, Sql};
use crate::search::consent;

/// The index table holding rows of a parameter type.
pub(crate) fn table_of(kind: ParamType) -> Option<&'static str> {
    match kind {
        ParamType::Token | ParamType::Composite | ParamType::Special => Some("search_token"),
        ParamType::String => Some("search_string"),
        ParamType::Date => Some("search_date"),
        ParamType::Reference => Some("search_reference"),
        ParamType::Uri => Some("search_uri"),
        ParamType::Number | ParamType::Quantity => None,
    }
}

/// The predicate that `criterion` holds for the `resources` row aliased `r`, a resource of
/// `resource_type`.
pub(crate) fn predicate(
    sql: &mut Sql,
    criterion: &Criterion,
    r: &str,
    resource_type: &str,
) -> String {
    match criterion {
        // One id (every read) as a scalar: the generic plan a connection caches then
        // knows it finds one row, and PostgreSQL stops planning the read every time.
        Criterion::Id { ids } if ids.len() == 1 => {
            let id = sql.text(ids[0].clone());
            format!("{r}.id = {id}")
        }
        Criterion::Id { ids } => {
            let ids = sql.bind(Bind::Texts(ids.clone()));
            format!("{r}.id = ANY({ids})")
        }
        Criterion::LastUpdated { values } => {
            let column = format!("{r}.last_updated");
            any_of(values.iter().map(|m| date_match(sql, m, &column, &column)))
        }
        Criterion::Missing { key, kind, missing } => {
            let Some(table) = table_of(*kind) else {
                return if *missing {
                    "TRUE".into()
                } else {
                    "FALSE".into()
                };
            };
            let key = sql.key(*key);
            let x = sql.alias("x");
            let exists =
                format!("EXISTS (SELECT 1 FROM {table} {x} WHERE {x}.res_id = {r}.res_id AND {x}.key = {key})");
            if *missing {
                format!("NOT {exists}")
            } else {
                exists
            }
        }
        Criterion::Token { .. }
        | Criterion::TokenText { .. }
        | Criterion::String { .. }
        | Criterion::Date { .. }
        | Criterion::Reference { .. }
        | Criterion::Uri { .. } => {
            let Some(m) = index_match(sql, criterion) else {
                return "FALSE".into();
            };
            let exists = index_exists(&m, r);
            if matches!(criterion, Criterion::Token { negated: true, .. }) {
                format!("NOT {exists}")
            } else {
                exists
            }
        }
        Criterion::Chain { key, targets } => {
            let x = sql.alias("x");
            let t = sql.alias("t");
            let key = sql.key(*key);
            let per_target = any_of(targets.iter().map(|target| {
                let ty = sql.type_name(&target.resource_type);
                let inner = predicate(sql, &target.criterion, &t, &target.resource_type);
                format!("({x}.target_type = {ty} AND {inner})")
            }));
            format!(
                "EXISTS (SELECT 1 FROM search_reference {x} \
                 JOIN resources {t} ON {t}.resource_type = {x}.target_type AND {t}.id = {x}.target_id \
                 WHERE {x}.res_id = {r}.res_id AND {x}.key = {key} AND NOT {t}.deleted AND {per_target})"
            )
        }
        Criterion::Has {
            source_type,
            key,
            criterion,
        } => {
            let x = sql.alias("x");
            let s = sql.alias("s");
            let key = sql.key(*key);
            let target_type = sql.type_name(resource_type);
            let inner = predicate(sql, criterion, &s, source_type);
            format!(
                "EXISTS (SELECT 1 FROM search_reference {x} JOIN resources {s} ON {s}.res_id = {x}.res_id \
                 WHERE {x}.key = {key} AND {x}.target_type = {target_type} AND {x}.target_id = {r}.id \
                 AND NOT {s}.deleted AND {inner})"
            )
        }
        Criterion::AnyOf { alternatives } => {
            alternatives_predicate(sql, alternatives, r, resource_type)
        }
        Criterion::NoneOf { alternatives } => {
            match alternatives_predicate(sql, alternatives, r, resource_type).as_str() {
                "FALSE" => "TRUE".into(),
                "TRUE" => "FALSE".into(),
                any => format!("(NOT {any})"),
            }
        }
        Criterion::Consented { effect, reader } => {
            consent::consented(sql, *effect, reader, r, resource_type)
        }
        Criterion::EmergencyAccess { reader } => {
            consent::emergency_access(sql, reader, r, resource_type)
        }
    }
}

/// `AnyOf`: the alternatives ORed, each the AND of its criteria's predicates, every probe
/// fenced like a top-level one (see [`per_candidate`]). Always parenthesized (or a bare
/// `TRUE`/`FALSE`), so a caller fencing top-level `EXISTS` probes leaves it alone.
fn alternatives_predicate(
    sql: &mut Sql,
    alternatives: &[Vec<Criterion>],
    r: &str,
    resource_type: &str,
) -> String {
    let alternatives: Vec<String> = alternatives
        .iter()
        .map(|criteria| {
            all_of(
                criteria
                    .iter()
                    .map(|c| per_candidate(predicate(sql, c, r, resource_type))),
            )
        })
        .collect();
    match alternatives.as_slice() {
        [] => "FALSE".into(),
        [only] if only == "TRUE" => only.clone(),
        _ => format!("({})", alternatives.join(" OR ")),
    }
}

/// An `EXISTS` criterion as a probe per candidate row: `OFFSET 0` keeps PostgreSQL from
/// turning it into a join or a hashed subplan (which reads every row of that value).
pub(crate) fn per_candidate(predicate: String) -> String {
    let is_exists = predicate.starts_with("EXISTS (") || predicate.starts_with("NOT EXISTS (");
    match predicate.strip_suffix(')') {
        Some(body) if is_exists => format!("{body} OFFSET 0)"),
        _ => predicate,
    }
}

/// Rows of one index table that match a criterion's values: `{table} {alias} WHERE
/// {alias}.key = {key} AND {matches}`.
pub(crate) struct IndexMatch {
    table: &'static str,
    alias: String,
    key: String,
    matches: String,
}

/// The index rows a simple criterion (token, text, string, date, reference, uri) matches;
/// `None` for the others. A token's `:not` is left to the caller.
fn index_match(sql: &mut Sql, criterion: &Criterion) -> Option<IndexMatch> {
    let x = sql.alias("x");
    let (table, key, matches) = match criterion {
        Criterion::Token { key, values, .. } => (
            "search_token",
            *key,
            any_of(values.iter().map(|v| token_match(sql, v, &x))),
        ),
        Criterion::TokenText { key, values } => (
            "search_token",
            *key,
            any_of(
                values
                    .iter()
                    .map(|v| prefix_range(sql, &format!("{x}.text"), v)),
            ),
        ),
        Criterion::String { key, mode, values } => (
            "search_string",
            *key,
            any_of(values.iter().map(|v| string_match(sql, *mode, v, &x))),
        ),
        Criterion::Date { key, values } => {
            let (low, high) = (format!("{x}.low"), format!("{x}.high"));
            (
                "search_date",
                *key,
                any_of(values.iter().map(|m| date_match(sql, m, &low, &high))),
            )
        }
        Criterion::Reference { key, values } => (
            "search_reference",
            *key,
            any_of(values.iter().map(|v| reference_match(sql, v, &x))),
        ),
        Criterion::Uri { key, mode, values } => (
            "search_uri",
            *key,
            any_of(values.iter().map(|v| uri_match(sql, *mode, v, &x))),
        ),
        _ => return None,
    };
    Some(IndexMatch {
        table,
        alias: x,
        key: sql.key(key),
        matches,
    })
}

/// `EXISTS` over the matching index rows of the resource `r`.
fn index_exists(m: &IndexMatch, r: &str) -> String {
    let IndexMatch {
        table,
        alias: x,
        key,
        matches,
    } = m;
    format!("EXISTS (SELECT 1 FROM {table} {x} WHERE {x}.res_id = {r}.res_id AND {x}.key = {key} AND {matches})")
}

/// A query of the row keys (`res_id`) of the `resource_type` resources a criterion
/// matches, for a search to start from; `None` for criteria that cannot start one
/// (negations, `:missing`, `_id` and `_lastUpdated`, which filter `resources` itself, and
/// `AnyOf`).
pub(crate) fn driver_rows(
    sql: &mut Sql,
    criterion: &Criterion,
    resource_type: &str,
) -> Option<String> {
    match criterion {
        // Negations cannot use a value index; alternatives are checked per candidate.
        Criterion::Token { negated: true, .. }
        | Criterion::AnyOf { .. }
        | Criterion::NoneOf { .. }
        | Criterion::Consented { .. }
        | Criterion::EmergencyAccess { .. } => None,
        Criterion::Chain { key, targets } => {
            let x = sql.alias("x");
            let key = sql.key(*key);
            let per_target = any_of(targets.iter().map(|target| {
                let t = sql.alias("t");
                let ty = sql.type_name(&target.resource_type);
                let inner = predicate(sql, &target.criterion, &t, &target.resource_type);
                format!(
                    "({x}.target_type = {ty} AND {x}.target_id IN (SELECT {t}.id FROM resources {t} \
                     WHERE {t}.resource_type = {ty} AND NOT {t}.deleted AND {inner}))"
                )
            }));
            Some(format!(
                "SELECT {x}.res_id FROM search_reference {x} WHERE {x}.key = {key} AND {per_target}"
            ))
        }
        Criterion::Has {
            source_type,
            key,
            criterion,
        } => {
            let (r, x, s) = (sql.alias("r"), sql.alias("x"), sql.alias("s"));
            let key = sql.key(*key);
            let target_type = sql.type_name(resource_type);
            let inner = predicate(sql, criterion, &s, source_type);
            Some(format!(
                "SELECT {r}.res_id FROM resources {r} WHERE {r}.resource_type = {target_type} \
                 AND NOT {r}.deleted AND {r}.id IN (SELECT {x}.target_id FROM search_reference {x} \
                 JOIN resources {s} ON {s}.res_id = {x}.res_id WHERE {x}.key = {key} \
                 AND {x}.target_type = {target_type} AND NOT {s}.deleted AND {inner})"
            ))
        }
        _ => {
            let IndexMatch {
                table,
                alias: x,
                key,
                matches,
            } = index_match(sql, criterion)?;
            Some(format!(
                "SELECT {x}.res_id FROM {table} {x} WHERE {x}.key = {key} AND {matches}"
            ))
        }
    }
}

/// ANDs predicates; none holds always.
fn all_of(parts: impl Iterator<Item = String>) -> String {
    let parts: Vec<String> = parts.collect();
    match parts.len() {
        0 => "TRUE".into(),
        1 => parts.into_iter().next().unwrap_or_default(),
        _ => format!("({})", parts.join(" AND ")),
    }
}

/// ORs predicates; no values matches nothing.
fn any_of(parts: impl Iterator<Item = String>) -> String {
    let parts: Vec<String> = parts.collect();
    match parts.len() {
        0 => "FALSE".into(),
        1 => parts.into_iter().next().unwrap_or_default(),
        _ => format!("({})", parts.join(" OR ")),
    }
}

fn token_match(sql: &mut Sql, m: &TokenMatch, x: &str) -> String {
    let code = m.code.as_ref().map(|c| {
        let c = sql.text(c.clone());
        format!("{x}.code = {c}")
    });
    let system = match &m.system {
        SystemMatch::Any => None,
        SystemMatch::NoSystem => Some(format!("{x}.system IS NULL")),
        SystemMatch::Is(s) => {
            let s = sql.text(s.clone());
            Some(format!("{x}.system = {s}"))
        }
    };
    match (code, system) {
        (Some(c), Some(s)) => format!("({c} AND {s})"),
        (Some(c), None) => c,
        (None, Some(s)) => s,
        (None, None) => "TRUE".into(),
    }
}

/// `column` starts with `prefix`, as a range over the `C` collation's byte order, so a
/// btree index serves it even in a generic plan (a `LIKE` pattern only does when its
/// value is known at planning time).
fn prefix_range(sql: &mut Sql, column: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        return format!("{column} IS NOT NULL");
    }
    let low = sql.text(prefix);
    match successor(prefix) {
        Some(next) => {
            let high = sql.text(next);
            format!("({column} >= {low} AND {column} < {high})")
        }
        None => format!("{column} >= {low}"),
    }
}

/// The smallest string greater than every string starting with `prefix`: its last
/// character that can be incremented, incremented, with what follows dropped.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..0xE000).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn string_match(sql: &mut Sql, mode: StringMode, v: &str, x: &str) -> String {
    match mode {
        StringMode::Prefix => prefix_range(sql, &format!("{x}.normalized"), v),
        StringMode::Contains => {
            let p = sql.text(format!("%{}%", like_escape(v)));
            format!("{x}.normalized LIKE {p}")
        }
        StringMode::Exact => {
            let n = sql.text(fhir_profiles::search::normalize::normalize_string(v));
            let e = sql.text(v);
            format!("({x}.normalized = {n} AND {x}.exact = {e})")
        }
    }
}

/// `:below` and `:above` compare whole path segments: `…/docs` is above `…/docs/a.pdf`
/// but not above `…/docs-archive/b.pdf`.
fn uri_match(sql: &mut Sql, mode: UriMode, v: &str, x: &str) -> String {
    match mode {
        UriMode::Exact => {
            let u = sql.text(v);
            format!("{x}.uri = {u}")
        }
        UriMode::Below => {
            let stem = v.trim_end_matches('/');
            let exact = sql.text(stem);
            let below = prefix_range(sql, &format!("{x}.uri"), &format!("{stem}/"));
            format!("({x}.uri = {exact} OR {below})")
        }
        UriMode::Above => {
            let u = sql.text(v);
            format!("({x}.uri = {u} OR starts_with({u}, rtrim({x}.uri, '/') || '/'))")
        }
    }
}

fn reference_match(sql: &mut Sql, m: &ReferenceMatch, x: &str) -> String {
    match m {
        ReferenceMatch::Local {
            resource_type: Some(t),
            id,
        } => {
            let id = sql.text(id.clone());
            let t = sql.type_name(t);
            format!("({x}.target_id = {id} AND {x}.target_type = {t})")
        }
        ReferenceMatch::Local {
            resource_type: None,
            id,
        } => {
            let id = sql.text(id.clone());
            format!("{x}.target_id = {id}")
        }
        ReferenceMatch::Url(u) => {
            let u = sql.text(u.clone());
            format!("{x}.url = {u}")
        }
    }
}

/// A date prefix over an indexed range `[low, high]` (column expressions), written so the
/// comparison on the indexed bound comes first where that helps an index range scan.
pub(crate) fn date_match(sql: &mut Sql, m: &DateMatch, low: &str, high: &str) -> String {
    let range = if m.prefix == Prefix::Ap {
        widened(m.range)
    } else {
        m.range
    };
    let pl = sql.instant(range.low);
    let ph = sql.instant(range.high);
    match m.prefix {
        Prefix::Eq => format!("({low} >= {pl} AND {high} <= {ph})"),
        Prefix::Ne => format!("NOT ({low} >= {pl} AND {high} <= {ph})"),
        Prefix::Gt => format!("{high} > {ph}"),
        Prefix::Lt => format!("{low} < {pl}"),
        // gt or eq: equivalent to the form below, whose first term bounds an index scan.
        Prefix::Ge => format!("({high} >= {pl} AND ({high} > {ph} OR {low} >= {pl}))"),
        Prefix::Le => format!("({low} <= {ph} AND ({low} < {pl} OR {high} <= {ph}))"),
        Prefix::Sa => format!("{low} > {ph}"),
        Prefix::Eb => format!("{high} < {pl}"),
        Prefix::Ap => format!("({low} <= {ph} AND {high} >= {pl})"),
    }
}

/// `ap`: the value's range widened on both sides by a tenth of its distance from now, and
/// by at least a day.
pub(crate) fn widened(range: DateRange) -> DateRange {
    let now = Utc::now();
    let distance = if range.low > now {
        range.low - now
    } else {
        now - range.high
    };
    let margin = std::cmp::max(distance.abs() / 10, Duration::days(1));
    DateRange {
        low: range.low.checked_sub_signed(margin).unwrap_or(range.low),
        high: range.high.checked_add_signed(margin).unwrap_or(range.high),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(key: i32, code: &str) -> Criterion {
        Criterion::Token {
            key,
            negated: false,
            values: vec![TokenMatch {
                system: SystemMatch::Any,
                code: Some(code.into()),
            }],
        }
    }

    fn any_of(alternatives: Vec<Vec<Criterion>>) -> String {
        let mut sql = Sql::default();
        let p = predicate(&mut sql, &Criterion::AnyOf { alternatives }, "r", "T");
        // The caller's fence leaves it as it is.
        assert_eq!(per_candidate(p.clone()), p);
        p
    }

    fn none_of(alternatives: Vec<Vec<Criterion>>) -> String {
        let mut sql = Sql::default();
        let p = predicate(&mut sql, &Criterion::NoneOf { alternatives }, "r", "T");
        assert_eq!(per_candidate(p.clone()), p);
        p
    }

    #[test]
    fn exclusions_negate_the_alternatives() {
        assert_eq!(none_of(Vec::new()), "TRUE", "nothing excluded");
        assert_eq!(none_of(vec![Vec::new()]), "FALSE", "everything excluded");
        let two = none_of(vec![vec![code(1, "a")], vec![code(2, "b"), code(3, "c")]]);
        assert!(two.starts_with("(NOT (EXISTS ("), "{two}");
        assert_eq!(two.matches(" OFFSET 0)").count(), 3, "{two}");
    }

    #[test]
    fn alternatives_are_ors_of_fenced_ands() {
        assert_eq!(any_of(Vec::new()), "FALSE");
        assert_eq!(any_of(vec![Vec::new()]), "TRUE");
        assert_eq!(
            any_of(vec![vec![code(1, "a")], Vec::new()])
                .matches(" OR TRUE")
                .count(),
            1
        );
        let one = any_of(vec![vec![code(1, "a")]]);
        assert!(
            one.starts_with("(EXISTS (") && one.ends_with(" OFFSET 0))"),
            "{one}"
        );
        let two = any_of(vec![vec![code(1, "a"), code(2, "b")], vec![code(3, "c")]]);
        assert_eq!(two.matches(" OFFSET 0)").count(), 3, "{two}");
        assert!(
            two.starts_with("((EXISTS (") && two.contains(") OR EXISTS ("),
            "{two}"
        );
    }
}
