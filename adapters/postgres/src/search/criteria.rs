//! Search criteria as SQL predicates over a `resources` row. Each criterion becomes an
//! `EXISTS` over one index table, which PostgreSQL turns into a semi-join: it either drives
//! the search from that table's value index or probes it for each candidate.

use chrono::{Duration, Utc};
use fhir_profiles::search::query::{
    Criterion, DateMatch, Prefix, ReferenceMatch, StringMode, SystemMatch, TokenMatch, UriMode,
};
use fhir_profiles::search::{DateRange, ParamType};

use crate::search::binds::{like_escape, Bind, Sql};

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
            let key = sql.int(*key);
            let x = sql.alias("x");
            let exists =
                format!("EXISTS (SELECT 1 FROM {table} {x} WHERE {x}.res_id = {r}.res_id AND {x}.key = {key})");
            if *missing {
                format!("NOT {exists}")
            } else {
                exists
            }
        }
        Criterion::Token {
            key,
            negated,
            values,
        } => {
            let x = sql.alias("x");
            let matches = any_of(values.iter().map(|v| token_match(sql, v, &x)));
            let exists = index_exists(sql, "search_token", &x, *key, r, &matches);
            if *negated {
                format!("NOT {exists}")
            } else {
                exists
            }
        }
        Criterion::TokenText { key, values } => {
            let x = sql.alias("x");
            let matches = any_of(values.iter().map(|v| {
                let p = sql.text(format!("{}%", like_escape(v)));
                format!("{x}.text LIKE {p}")
            }));
            index_exists(sql, "search_token", &x, *key, r, &matches)
        }
        Criterion::String { key, mode, values } => {
            let x = sql.alias("x");
            let matches = any_of(values.iter().map(|v| string_match(sql, *mode, v, &x)));
            index_exists(sql, "search_string", &x, *key, r, &matches)
        }
        Criterion::Date { key, values } => {
            let x = sql.alias("x");
            let (low, high) = (format!("{x}.low"), format!("{x}.high"));
            let matches = any_of(values.iter().map(|m| date_match(sql, m, &low, &high)));
            index_exists(sql, "search_date", &x, *key, r, &matches)
        }
        Criterion::Reference { key, values } => {
            let x = sql.alias("x");
            let matches = any_of(values.iter().map(|v| reference_match(sql, v, &x)));
            index_exists(sql, "search_reference", &x, *key, r, &matches)
        }
        Criterion::Uri { key, mode, values } => {
            let x = sql.alias("x");
            let matches = any_of(values.iter().map(|v| uri_match(sql, *mode, v, &x)));
            index_exists(sql, "search_uri", &x, *key, r, &matches)
        }
        Criterion::Chain { key, targets } => {
            let x = sql.alias("x");
            let t = sql.alias("t");
            let key = sql.int(*key);
            let per_target = any_of(targets.iter().map(|target| {
                let ty = sql.text(target.resource_type.clone());
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
            let key = sql.int(*key);
            let target_type = sql.text(resource_type);
            let inner = predicate(sql, criterion, &s, source_type);
            format!(
                "EXISTS (SELECT 1 FROM search_reference {x} JOIN resources {s} ON {s}.res_id = {x}.res_id \
                 WHERE {x}.key = {key} AND {x}.target_type = {target_type} AND {x}.target_id = {r}.id \
                 AND NOT {s}.deleted AND {inner})"
            )
        }
    }
}

/// `EXISTS` over the rows of `table` (aliased `x`) of parameter `key` of the resource `r`
/// that satisfy `matches`.
fn index_exists(sql: &mut Sql, table: &str, x: &str, key: i32, r: &str, matches: &str) -> String {
    let key = sql.int(key);
    format!("EXISTS (SELECT 1 FROM {table} {x} WHERE {x}.res_id = {r}.res_id AND {x}.key = {key} AND {matches})")
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

fn string_match(sql: &mut Sql, mode: StringMode, v: &str, x: &str) -> String {
    match mode {
        StringMode::Prefix => {
            let p = sql.text(format!("{}%", like_escape(v)));
            format!("{x}.normalized LIKE {p}")
        }
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
            let with_slash = sql.text(format!("{stem}/"));
            let below = sql.text(format!("{}/%", like_escape(stem)));
            format!("({x}.uri = {exact} OR {x}.uri = {with_slash} OR {x}.uri LIKE {below})")
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
            let t = sql.text(t.clone());
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
fn date_match(sql: &mut Sql, m: &DateMatch, low: &str, high: &str) -> String {
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
