//! Search and read of the audit trail (`audit_events`): the same parsed
//! [`SearchRequest`] and access criteria as any search, over the trail's own
//! table instead of the generic index tables. Every R4 AuditEvent search
//! parameter is a `param=value` term in the GIN-indexed `terms` array
//! (`fhirledger_audit::terms`) — or, for the coded facts of which every
//! value is common ([`crate::audit::CODE_PARAMS`]), in the unindexed `codes`
//! array —, `date` and `_lastUpdated` are the `recorded`
//! column, and `patient` is `patient_id`, the one patient an event is about.
//!
//! Pages are newest first unless `_sort=date` asks otherwise, keyset-paged on
//! (`recorded`, `seq`), so a patient's log and a hospital's trail are index
//! range scans at any depth.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel::PgConnection;

use fhir_profiles::search::query::{
    Criterion, ReferenceMatch, SearchRequest, SortField, StringMode, SystemMatch, TokenMatch,
    TotalMode, UriMode,
};
use fhir_profiles::search::registry::{param_key, params};
use fhir_profiles::search::{normalize::normalize_string, ParamKey, ParamType};
use fhir_profiles::summary::SummaryMode;

use crate::audit::is_code_param;
use crate::search::binds::{like_escape, Bind, Sql};
use crate::search::criteria::{date_match, predicate as resource_predicate};
use crate::search::cursor::Cursor;
use crate::search::{Found, SearchPage};
use crate::tx::{Method, StoredVersion};
use crate::StoreError;

const TYPE: &str = "AuditEvent";

/// The AuditEvent parameter a criterion's key names (`agent:identifier` for
/// the identifier form of a reference parameter).
fn param_name(key: ParamKey) -> Option<&'static str> {
    static NAMES: OnceLock<HashMap<ParamKey, String>> = OnceLock::new();
    NAMES
        .get_or_init(|| {
            let mut names = HashMap::new();
            for p in params(TYPE) {
                names.insert(p.key, p.code.clone());
                if p.kind == ParamType::Reference {
                    let identifier = format!("{}:identifier", p.code);
                    names.insert(param_key(TYPE, &identifier), identifier);
                }
            }
            names
        })
        .get(&key)
        .map(String::as_str)
}

fn unsupported(what: impl Into<String>) -> StoreError {
    StoreError::Unsupported(what.into())
}

fn name_of(key: ParamKey) -> Result<&'static str, StoreError> {
    param_name(key).ok_or_else(|| unsupported("a search parameter AuditEvent does not have"))
}

/// What one criterion asks of the row `e`, as terms it must carry (any of
/// them) or as SQL.
enum Terms {
    /// Any of these exact terms (one GIN probe).
    Exact(Vec<String>),
    /// Any term matching one of these `LIKE` patterns.
    Like(Vec<String>),
}

/// The column holding the terms of parameter `param`.
fn column_of(param: &str) -> &'static str {
    if is_code_param(param) {
        "e.codes"
    } else {
        "e.terms"
    }
}

/// The SQL of "the event carries any of these terms of `param`".
fn carries(sql: &mut Sql, param: &str, terms: Terms) -> String {
    let column = column_of(param);
    match terms {
        Terms::Exact(terms) if terms.is_empty() => "FALSE".into(),
        Terms::Exact(terms) => {
            let terms = sql.bind(Bind::Texts(terms));
            format!("{column} && {terms}")
        }
        Terms::Like(patterns) => {
            let patterns = sql.bind(Bind::Texts(patterns));
            format!("EXISTS (SELECT 1 FROM unnest({column}) t WHERE t LIKE ANY ({patterns}))")
        }
    }
}

fn token_terms(param: &str, values: &[TokenMatch]) -> (Vec<String>, Vec<String>) {
    let (mut exact, mut like) = (Vec::new(), Vec::new());
    for v in values {
        match (&v.system, &v.code) {
            (SystemMatch::Any, Some(code)) => exact.push(format!("{param}={code}")),
            (SystemMatch::NoSystem, Some(code)) => exact.push(format!("{param}=|{code}")),
            (SystemMatch::Is(s), Some(code)) => exact.push(format!("{param}={s}|{code}")),
            (SystemMatch::Is(s), None) => {
                like.push(format!("{}={}|%", like_escape(param), like_escape(s)))
            }
            (SystemMatch::NoSystem, None) | (SystemMatch::Any, None) => {
                like.push(format!("{}=%", like_escape(param)))
            }
        }
    }
    (exact, like)
}

/// Exact terms and patterns of `param` ORed.
fn either(sql: &mut Sql, param: &str, (exact, like): (Vec<String>, Vec<String>)) -> String {
    match (exact.is_empty(), like.is_empty()) {
        (_, true) => carries(sql, param, Terms::Exact(exact)),
        (true, false) => carries(sql, param, Terms::Like(like)),
        (false, false) => {
            let a = carries(sql, param, Terms::Exact(exact));
            let b = carries(sql, param, Terms::Like(like));
            format!("({a} OR {b})")
        }
    }
}

/// The predicate `criterion` holds for the `audit_events` row `e`;
/// [`StoreError::Unsupported`] for what the trail cannot be searched by.
pub(crate) fn predicate(sql: &mut Sql, criterion: &Criterion) -> Result<String, StoreError> {
    Ok(match criterion {
        Criterion::Id { ids } => {
            let ids = sql.bind(Bind::Texts(ids.clone()));
            format!("e.id = ANY({ids})")
        }
        Criterion::LastUpdated { values } => any_of(
            values
                .iter()
                .map(|m| date_match(sql, m, "e.recorded", "e.recorded")),
        ),
        Criterion::Date { key, values } => {
            if name_of(*key)? != "date" {
                return Err(unsupported("a date parameter AuditEvent does not have"));
            }
            any_of(
                values
                    .iter()
                    .map(|m| date_match(sql, m, "e.recorded", "e.recorded")),
            )
        }
        Criterion::Missing { key, missing, .. } => {
            let name = name_of(*key)?;
            let present = match name {
                "date" => "TRUE".to_string(),
                "patient" => "e.patient_id IS NOT NULL".to_string(),
                _ => carries(
                    sql,
                    name,
                    Terms::Like(vec![format!("{}=%", like_escape(name))]),
                ),
            };
            if *missing {
                format!("NOT ({present})")
            } else {
                present
            }
        }
        Criterion::Token {
            key,
            negated,
            values,
        } => {
            let name = name_of(*key)?;
            let holds = either(sql, name, token_terms(name, values));
            if *negated {
                format!("NOT {holds}")
            } else {
                holds
            }
        }
        Criterion::String { key, mode, values } => {
            let name = name_of(*key)?;
            let (mut exact, mut like) = (Vec::new(), Vec::new());
            for v in values {
                let v = normalize_string(v);
                match mode {
                    StringMode::Exact => exact.push(format!("{name}={v}")),
                    StringMode::Prefix => like.push(format!("{name}={}%", like_escape(&v))),
                    StringMode::Contains => like.push(format!("{name}=%{}%", like_escape(&v))),
                }
            }
            either(sql, name, (exact, like))
        }
        Criterion::Uri { key, mode, values } => {
            let name = name_of(*key)?;
            let (mut exact, mut like) = (Vec::new(), Vec::new());
            for v in values {
                match mode {
                    UriMode::Exact => exact.push(format!("{name}={v}")),
                    UriMode::Below => {
                        let stem = v.trim_end_matches('/');
                        exact.push(format!("{name}={stem}"));
                        like.push(format!("{name}={}/%", like_escape(stem)));
                    }
                    UriMode::Above => {
                        // Every ancestor path of the value, itself included.
                        let mut path = v.as_str();
                        exact.push(format!("{name}={path}"));
                        while let Some((parent, _)) = path.rsplit_once('/') {
                            if parent.ends_with('/') || parent.is_empty() {
                                break;
                            }
                            exact.push(format!("{name}={parent}"));
                            path = parent;
                        }
                    }
                }
            }
            either(sql, name, (exact, like))
        }
        Criterion::Reference { key, values } => {
            let name = name_of(*key)?;
            if name == "patient" {
                return patient_match(sql, values);
            }
            let (mut exact, mut like) = (Vec::new(), Vec::new());
            for v in values {
                match v {
                    ReferenceMatch::Local {
                        resource_type: Some(t),
                        id,
                    } => exact.push(format!("{name}={t}/{id}")),
                    ReferenceMatch::Local {
                        resource_type: None,
                        id,
                    } => like.push(format!("{name}=%/{}", like_escape(id))),
                    ReferenceMatch::Url(u) => exact.push(format!("{name}={u}")),
                }
            }
            either(sql, name, (exact, like))
        }
        Criterion::Chain { key, targets } => {
            let name = name_of(*key)?;
            let mut alternatives = Vec::new();
            for target in targets {
                let r = sql.alias("r");
                let ty = sql.type_name(&target.resource_type);
                let inner = resource_predicate(sql, &target.criterion, &r, &target.resource_type);
                let ids = format!(
                    "SELECT {r}.id FROM resources {r} WHERE {r}.resource_type = {ty} \
                     AND NOT {r}.deleted AND {inner}"
                );
                alternatives.push(if name == "patient" && target.resource_type == "Patient" {
                    format!("e.patient_id IN ({ids})")
                } else {
                    let prefix = sql.text(format!("{name}={}/", target.resource_type));
                    let column = column_of(name);
                    format!("{column} && ARRAY(SELECT {prefix} || id FROM ({ids}) c(id))")
                });
            }
            any_of(alternatives.into_iter())
        }
        Criterion::AnyOf { alternatives } => alternatives_sql(sql, alternatives)?,
        Criterion::NoneOf { alternatives } => {
            format!("NOT {}", alternatives_sql(sql, alternatives)?)
        }
        Criterion::TokenText { .. } => {
            return Err(unsupported("':text' on AuditEvent search parameters"))
        }
        Criterion::Has { .. } => return Err(unsupported("'_has' on AuditEvent")),
        Criterion::Consented { .. } | Criterion::EmergencyAccess { .. } => {
            return Err(unsupported("Consent criteria on AuditEvent"))
        }
    })
}

/// `patient`: the one patient the event is about (see the migration).
fn patient_match(sql: &mut Sql, values: &[ReferenceMatch]) -> Result<String, StoreError> {
    let mut ids = Vec::new();
    for v in values {
        match v {
            ReferenceMatch::Local { resource_type, id }
                if resource_type.as_deref().is_none_or(|t| t == "Patient") =>
            {
                ids.push(id.clone())
            }
            _ => {}
        }
    }
    Ok(match ids.len() {
        0 => "FALSE".into(),
        1 => {
            let id = sql.text(ids.remove(0));
            format!("e.patient_id = {id}")
        }
        _ => {
            let ids = sql.bind(Bind::Texts(ids));
            format!("e.patient_id = ANY({ids})")
        }
    })
}

fn alternatives_sql(sql: &mut Sql, alternatives: &[Vec<Criterion>]) -> Result<String, StoreError> {
    let mut ors = Vec::new();
    for criteria in alternatives {
        let mut ands = Vec::new();
        for c in criteria {
            ands.push(predicate(sql, c)?);
        }
        ors.push(all_of(ands));
    }
    Ok(format!("({})", any_of(ors.into_iter())))
}

fn all_of(parts: Vec<String>) -> String {
    if parts.is_empty() {
        "TRUE".into()
    } else {
        format!("({})", parts.join(" AND "))
    }
}

fn any_of(parts: impl Iterator<Item = String>) -> String {
    let parts: Vec<String> = parts.collect();
    if parts.is_empty() {
        "FALSE".into()
    } else {
        format!("({})", parts.join(" OR "))
    }
}

/// The `WHERE` condition of every criterion.
fn filter(sql: &mut Sql, criteria: &[Criterion]) -> Result<String, StoreError> {
    let mut parts = Vec::new();
    for c in criteria {
        parts.push(predicate(sql, c)?);
    }
    Ok(all_of(parts))
}

/// Whether the page runs newest first: the default, and `_sort=-date`.
fn descending(request: &SearchRequest) -> Result<bool, StoreError> {
    let date_key = param_key(TYPE, "date");
    match request.sort.as_slice() {
        [] => Ok(true),
        [key] => match &key.field {
            SortField::LastUpdated => Ok(key.descending),
            SortField::Param { key: k, .. } if *k == date_key => Ok(key.descending),
            _ => Err(unsupported(
                "sorting AuditEvents by anything but 'date' (or '_lastUpdated')",
            )),
        },
        _ => Err(unsupported("more than one sort key on AuditEvent")),
    }
}

#[derive(QueryableByName)]
struct EventRow {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Timestamptz)]
    recorded: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Text>)]
    patient_id: Option<String>,
    #[diesel(sql_type = Text)]
    content: String,
}

impl EventRow {
    fn found(self) -> Found {
        Found {
            resource_type: TYPE.to_string(),
            id: self.id,
            version_id: 1,
            last_updated: self.recorded,
            content: self.content,
            patient: Some(self.patient_id),
        }
    }
}

/// What identifies a search for its cursors (as the generic search's do).
fn fingerprint(request: &SearchRequest, criteria: &[Criterion]) -> String {
    format!(
        "{TYPE}|{:?}|{:?}|{:?}",
        request.criteria, criteria, request.sort
    )
}

fn boundary(row: &EventRow, backwards: bool) -> Cursor {
    Cursor {
        keys: vec![Some(row.recorded.timestamp_micros().to_string())],
        res_id: row.seq,
        backwards,
    }
}

/// One page of the events `request` matches within `visibility` (the
/// caller's access criteria), with the total asked for.
pub(crate) fn search(
    conn: &mut PgConnection,
    request: &SearchRequest,
    visibility: &[Criterion],
) -> Result<SearchPage, StoreError> {
    if !request.includes.is_empty() || !request.revincludes.is_empty() {
        return Err(unsupported("'_include' and '_revinclude' on AuditEvent"));
    }
    let newest_first = descending(request)?;
    let criteria: Vec<Criterion> = request.criteria.iter().chain(visibility).cloned().collect();
    let search_id = fingerprint(request, visibility);
    let cursor = request
        .cursor
        .as_deref()
        .map(|c| Cursor::decode(c, 1, &search_id))
        .transpose()?;
    let mut page = SearchPage::default();
    let count_only = request.summary == Some(SummaryMode::Count);
    if !count_only && request.count > 0 {
        let backwards = cursor.as_ref().is_some_and(|c| c.backwards);
        // A `previous` page reads towards the start, then is turned around.
        let runs_descending = newest_first != backwards;
        let mut sql = Sql::default();
        let mut condition = filter(&mut sql, &criteria)?;
        if let Some(c) = &cursor {
            let micros: i64 = c
                .keys
                .first()
                .cloned()
                .flatten()
                .and_then(|k| k.parse().ok())
                .ok_or_else(|| StoreError::InvalidCursor("a cursor without its date".into()))?;
            let at = DateTime::<Utc>::from_timestamp_micros(micros)
                .ok_or_else(|| StoreError::InvalidCursor("a cursor with a bad date".into()))?;
            let at = sql.instant(at);
            let seq = sql.bind(Bind::BigInt(c.res_id));
            let after = if runs_descending { "<" } else { ">" };
            condition = format!("{condition} AND (e.recorded, e.seq) {after} ({at}, {seq})");
        }
        let order = if runs_descending { "DESC" } else { "ASC" };
        let limit = sql.bind(Bind::BigInt(request.count as i64 + 1));
        sql.push(&format!(
            "SELECT e.seq, e.id, e.recorded, e.patient_id, e.content FROM audit_events e WHERE {condition} \
             ORDER BY e.recorded {order}, e.seq {order} LIMIT {limit}"
        ));
        let mut rows = sql.query().load::<EventRow>(conn)?;
        let more = rows.len() > request.count;
        rows.truncate(request.count);
        if backwards {
            rows.reverse();
        }
        let (first, last) = (rows.first(), rows.last());
        // Going forwards, `more` means a next page; backwards, a previous one.
        let (has_next, has_previous) = if backwards {
            (true, more)
        } else {
            (more, cursor.is_some())
        };
        page.next = last
            .filter(|_| has_next)
            .map(|r| boundary(r, false).encode(&search_id));
        page.previous = first
            .filter(|_| has_previous)
            .map(|r| boundary(r, true).encode(&search_id));
        page.matches = rows.into_iter().map(EventRow::found).collect();
    }
    let wants_total = count_only
        || matches!(
            request.total,
            Some(TotalMode::Accurate | TotalMode::Estimate)
        );
    if wants_total {
        page.total = Some(count(conn, &criteria)?);
    }
    Ok(page)
}

fn count(conn: &mut PgConnection, criteria: &[Criterion]) -> Result<u64, StoreError> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut sql = Sql::default();
    let condition = filter(&mut sql, criteria)?;
    sql.push(&format!(
        "SELECT count(*) AS n FROM audit_events e WHERE {condition}"
    ));
    Ok(sql.query().get_result::<Count>(conn)?.n.max(0) as u64)
}

/// Event `id` if it meets `visibility`, as the one version an event has.
pub(crate) fn read(
    conn: &mut PgConnection,
    id: &str,
    visibility: &[Criterion],
) -> Result<Option<StoredVersion>, StoreError> {
    let mut sql = Sql::default();
    let condition = filter(&mut sql, visibility)?;
    let id = sql.text(id);
    sql.push(&format!(
        "SELECT e.seq, e.id, e.recorded, e.patient_id, e.content FROM audit_events e \
         WHERE e.id = {id} AND {condition}"
    ));
    Ok(sql
        .query()
        .get_result::<EventRow>(conn)
        .optional()?
        .map(|row| StoredVersion {
            seq: row.seq,
            resource_type: TYPE.to_string(),
            id: row.id,
            version_id: 1,
            last_updated: row.recorded,
            method: Method::Post,
            content: Some(row.content),
        }))
}

/// How many events meet `criteria`.
pub(crate) fn count_matching(
    conn: &mut PgConnection,
    criteria: &[Criterion],
) -> Result<u64, StoreError> {
    count(conn, criteria)
}

/// Hands every event meeting `criteria` to `each`, oldest first, fetched in
/// keyset batches of `batch` (on the `recorded` index, or a patient's), so
/// memory stays the same for any number of events; returns how many.
pub(crate) fn each_matching(
    conn: &mut PgConnection,
    criteria: &[Criterion],
    batch: usize,
    each: &mut dyn FnMut(&str) -> Result<(), StoreError>,
) -> Result<u64, StoreError> {
    let mut after: Option<(DateTime<Utc>, i64)> = None;
    let mut handed = 0u64;
    loop {
        let mut sql = Sql::default();
        let mut condition = filter(&mut sql, criteria)?;
        if let Some((recorded, seq)) = after {
            let recorded = sql.instant(recorded);
            let seq = sql.bind(Bind::BigInt(seq));
            condition = format!("{condition} AND (e.recorded, e.seq) > ({recorded}, {seq})");
        }
        let limit = sql.bind(Bind::BigInt(batch.max(1) as i64));
        sql.push(&format!(
            "SELECT e.seq, e.id, e.recorded, e.patient_id, e.content FROM audit_events e WHERE {condition} \
             ORDER BY e.recorded, e.seq LIMIT {limit}"
        ));
        let rows = sql.query().load::<EventRow>(conn)?;
        let Some(last) = rows.last() else {
            return Ok(handed);
        };
        after = Some((last.recorded, last.seq));
        let full = rows.len() >= batch.max(1);
        for row in &rows {
            each(&row.content)?;
            handed += 1;
        }
        if !full {
            return Ok(handed);
        }
    }
}
