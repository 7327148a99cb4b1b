//! Extraction of the index values of a resource by evaluating each search parameter's
//! FHIRPath expression.
//!
//! Every parameter of the resource's type is evaluated with its compiled expression (see
//! [`crate::search::registry`]) and each result is turned into rows by the parameter's type
//! and the FHIR type of the result:
//!
//! - token: Coding (system, code, display), CodeableConcept (each coding, plus its text),
//!   Identifier (system, value, type.text; and `:of-type` rows), ContactPoint (system,
//!   value), code/string/id/uri (value), boolean;
//! - string: string/markdown/code, each part of HumanName and Address;
//! - date: date/dateTime/instant, Period, Timing (events and repeat.boundsPeriod);
//! - reference: Reference (local `Type/id` or URL; and `:identifier` rows for
//!   Reference.identifier), canonical/uri;
//! - uri: uri/url/canonical/oid/uuid;
//! - composite: one token row per result, its components' values joined by `$`.
//!
//! Exact duplicates are dropped, and every text is cut to
//! [`normalize::MAX_INDEX_BYTES`](crate::search::normalize::MAX_INDEX_BYTES).

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::Value;

use crate::search::date::{parse_range, DateRange};
use crate::search::fhirpath::{is_a, split_reference, Item};
use crate::search::normalize::{normalize_string, truncate_for_index};
use crate::search::registry::{type_params, CompiledParam, ParamKey, ParamType};
use crate::search::{DateIndex, IndexRows, ReferenceIndex, StringIndex, TokenIndex, UriIndex};

/// At most this many rows come from one composite value (the product of its components'
/// values), so a resource cannot blow the index up.
const MAX_COMPOSITE_COMBINATIONS: usize = 64;

/// Everything `resource` (FHIR JSON with `resourceType`) is found by. `fhir_base` is this
/// server's base URL, so absolute references to it index as local ones.
pub fn extract(resource: &Value, fhir_base: &str) -> IndexRows {
    let Some(types) = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .and_then(type_params)
    else {
        return IndexRows::default();
    };
    let mut rows = Rows {
        base: fhir_base.trim_end_matches('/'),
        ..Rows::default()
    };
    for (param, compiled) in types.params.iter().zip(&types.compiled) {
        let Ok(expression) = &compiled.expression else {
            continue;
        };
        let items = expression.evaluate(resource, types.resource_type);
        let key = param.key;
        match param.kind {
            ParamType::Token => items
                .iter()
                .for_each(|i| rows.token(key, compiled.of_type_key, i)),
            ParamType::String => items.iter().for_each(|i| rows.string(key, i)),
            ParamType::Date => items.iter().for_each(|i| rows.date(key, i)),
            ParamType::Reference => items
                .iter()
                .for_each(|i| rows.reference(key, compiled.identifier_key, i)),
            ParamType::Uri => items.iter().for_each(|i| rows.uri(key, i)),
            ParamType::Composite => items.iter().for_each(|i| rows.composite(key, compiled, i)),
            ParamType::Number | ParamType::Quantity | ParamType::Special => {}
        }
    }
    IndexRows {
        tokens: rows.tokens.rows,
        strings: rows.strings.rows,
        dates: rows.dates.rows,
        references: rows.references.rows,
        uris: rows.uris.rows,
    }
}

/// Up to this many rows of a kind, duplicates are found by comparing with each row;
/// beyond, through a set of row hashes.
const LINEAR_DEDUP: usize = 32;

/// A row type with a hash of its content, for dropping duplicates.
trait Row: PartialEq {
    fn row_hash(&self) -> u64;
}

fn hash_of(value: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

impl Row for TokenIndex {
    fn row_hash(&self) -> u64 {
        hash_of((self.key, &self.system, &self.code, &self.text))
    }
}

impl Row for StringIndex {
    fn row_hash(&self) -> u64 {
        hash_of((self.key, &self.exact))
    }
}

impl Row for DateIndex {
    fn row_hash(&self) -> u64 {
        hash_of((self.key, self.low, self.high))
    }
}

impl Row for ReferenceIndex {
    fn row_hash(&self) -> u64 {
        hash_of((self.key, &self.target_type, &self.target_id, &self.url))
    }
}

impl Row for UriIndex {
    fn row_hash(&self) -> u64 {
        hash_of((self.key, &self.uri))
    }
}

/// Rows of one kind, without exact duplicates.
struct Unique<T> {
    rows: Vec<T>,
    /// Hashes of `rows`, once there are more than [`LINEAR_DEDUP`].
    seen: Option<HashSet<u64>>,
}

impl<T> Default for Unique<T> {
    fn default() -> Self {
        Unique {
            rows: Vec::new(),
            seen: None,
        }
    }
}

impl<T: Row> Unique<T> {
    /// Adds `row` unless an equal row is there.
    fn push(&mut self, row: T) {
        if self.rows.len() < LINEAR_DEDUP {
            if !self.rows.contains(&row) {
                self.rows.push(row);
            }
            return;
        }
        let rows = &self.rows;
        let seen = self
            .seen
            .get_or_insert_with(|| rows.iter().map(Row::row_hash).collect());
        // On a hash match, compare for real: equal hashes need not mean equal rows.
        if seen.insert(row.row_hash()) || !self.rows.contains(&row) {
            self.rows.push(row);
        }
    }
}

#[derive(Default)]
struct Rows<'b> {
    /// The server's base URL without a trailing slash.
    base: &'b str,
    tokens: Unique<TokenIndex>,
    strings: Unique<StringIndex>,
    dates: Unique<DateIndex>,
    references: Unique<ReferenceIndex>,
    uris: Unique<UriIndex>,
}

/// A string property of a JSON object.
fn text<'v>(value: &'v Value, name: &str) -> Option<&'v str> {
    value.get(name).and_then(Value::as_str)
}

/// The items of an array property (nothing when absent or not an array).
fn array<'v>(value: &'v Value, name: &str) -> impl Iterator<Item = &'v Value> {
    value
        .get(name)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// A stored text value: cut to the index limit.
fn stored(s: &str) -> String {
    truncate_for_index(s).to_string()
}

/// A stored display or text: normalized, then cut.
fn folded(s: &str) -> String {
    let mut n = normalize_string(s);
    let keep = truncate_for_index(&n).len();
    n.truncate(keep);
    n
}

fn boolean_code(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

/// The string-like primitives (string, code, id, markdown, uri, url, canonical, oid, uuid).
fn stringy(ty: &str) -> bool {
    is_a(ty, "string") || is_a(ty, "uri")
}

impl Rows<'_> {
    fn token_row(
        &mut self,
        key: ParamKey,
        system: Option<&str>,
        code: Option<&str>,
        text: Option<&str>,
    ) {
        if system.is_none() && code.is_none() && text.is_none() {
            return;
        }
        let row = TokenIndex {
            key,
            system: system.map(stored),
            code: code.map(stored),
            text: text.map(folded),
        };
        self.tokens.push(row);
    }

    fn coding(&mut self, key: ParamKey, coding: &Value) {
        self.token_row(
            key,
            text(coding, "system"),
            text(coding, "code"),
            text(coding, "display"),
        );
    }

    /// The token row of an Identifier and, with `of_type`, its `:of-type` rows.
    fn identifier(&mut self, key: ParamKey, of_type: Option<ParamKey>, identifier: &Value) {
        let system = text(identifier, "system");
        let value = text(identifier, "value");
        let id_type = identifier.get("type");
        if system.is_some() || value.is_some() {
            self.token_row(key, system, value, id_type.and_then(|t| text(t, "text")));
        }
        let (Some(of_type), Some(value), Some(id_type)) = (of_type, value, id_type) else {
            return;
        };
        for coding in array(id_type, "coding") {
            if let Some(code) = text(coding, "code") {
                let combined = format!("{code}|{value}");
                self.token_row(of_type, text(coding, "system"), Some(&combined), None);
            }
        }
    }

    fn token(&mut self, key: ParamKey, of_type: Option<ParamKey>, item: &Item<'_>) {
        let (value, ty) = match *item {
            Item::Bool(b) => return self.token_row(key, None, Some(boolean_code(b)), None),
            Item::Str(s) => return self.token_row(key, None, Some(s), None),
            Item::Resolved(_) => return,
            Item::Node { value, ty } => (value, ty),
        };
        match ty {
            "Coding" => self.coding(key, value),
            "CodeableConcept" => {
                for coding in array(value, "coding") {
                    self.coding(key, coding);
                }
                if let Some(t) = text(value, "text") {
                    self.token_row(key, None, None, Some(t));
                }
            }
            "Identifier" => self.identifier(key, of_type, value),
            "ContactPoint" => {
                let (system, v) = (text(value, "system"), text(value, "value"));
                if system.is_some() || v.is_some() {
                    self.token_row(key, system, v, None);
                }
            }
            "boolean" => {
                if let Some(b) = value.as_bool() {
                    self.token_row(key, None, Some(boolean_code(b)), None);
                }
            }
            t if stringy(t) => {
                if let Some(s) = value.as_str() {
                    self.token_row(key, None, Some(s), None);
                }
            }
            _ => {}
        }
    }

    fn string_row(&mut self, key: ParamKey, s: &str) {
        if s.trim().is_empty() {
            return;
        }
        let row = StringIndex {
            key,
            normalized: folded(s),
            exact: stored(s),
        };
        self.strings.push(row);
    }

    fn string_parts(&mut self, key: ParamKey, value: &Value, single: &[&str], repeated: &[&str]) {
        for name in repeated {
            for part in array(value, name).filter_map(Value::as_str) {
                self.string_row(key, part);
            }
        }
        for name in single {
            if let Some(part) = text(value, name) {
                self.string_row(key, part);
            }
        }
    }

    fn string(&mut self, key: ParamKey, item: &Item<'_>) {
        match *item {
            Item::Str(s) => self.string_row(key, s),
            Item::Node { value, ty } => match ty {
                "HumanName" => self.string_parts(
                    key,
                    value,
                    &["family", "text"],
                    &["given", "prefix", "suffix"],
                ),
                "Address" => self.string_parts(
                    key,
                    value,
                    &["city", "district", "state", "postalCode", "country", "text"],
                    &["line"],
                ),
                t if stringy(t) => {
                    if let Some(s) = value.as_str() {
                        self.string_row(key, s);
                    }
                }
                _ => {}
            },
            Item::Bool(_) | Item::Resolved(_) => {}
        }
    }

    fn date_row(&mut self, key: ParamKey, range: Option<DateRange>) {
        if let Some(r) = range {
            self.dates.push(DateIndex {
                key,
                low: r.low,
                high: r.high,
            });
        }
    }

    fn period(&mut self, key: ParamKey, period: &Value) {
        let start = text(period, "start").and_then(parse_range);
        let end = text(period, "end").and_then(parse_range);
        self.date_row(key, DateRange::between(start, end));
    }

    fn date(&mut self, key: ParamKey, item: &Item<'_>) {
        let Item::Node { value, ty } = *item else {
            return;
        };
        match ty {
            "date" | "dateTime" | "instant" => {
                self.date_row(key, value.as_str().and_then(parse_range));
            }
            "Period" => self.period(key, value),
            "Timing" => {
                for event in array(value, "event").filter_map(Value::as_str) {
                    self.date_row(key, parse_range(event));
                }
                if let Some(bounds) = value.get("repeat").and_then(|r| r.get("boundsPeriod")) {
                    self.period(key, bounds);
                }
            }
            _ => {}
        }
    }

    /// `(type, id)` when `reference` points to a resource on this server: relative, or
    /// absolute under the base URL; the version of a `_history` reference is dropped.
    fn local<'r>(&self, reference: &'r str) -> Option<(&'r str, &'r str)> {
        let relative = match reference.strip_prefix(self.base) {
            Some(rest) if !self.base.is_empty() => rest.strip_prefix('/')?,
            _ if reference.contains("://") => return None,
            _ => reference,
        };
        split_reference(relative)
    }

    fn reference_row(&mut self, key: ParamKey, reference: &str) {
        let row = match self.local(reference) {
            Some((t, id)) => ReferenceIndex {
                key,
                target_type: Some(t.to_string()),
                target_id: Some(stored(id)),
                url: None,
            },
            None => ReferenceIndex {
                key,
                target_type: None,
                target_id: None,
                url: Some(stored(reference)),
            },
        };
        self.references.push(row);
    }

    fn reference(&mut self, key: ParamKey, identifier_key: Option<ParamKey>, item: &Item<'_>) {
        let Item::Node { value, ty } = *item else {
            return;
        };
        match ty {
            "Reference" => {
                if let Some(r) = text(value, "reference") {
                    if !r.starts_with('#') && !r.is_empty() {
                        self.reference_row(key, r);
                    }
                }
                if let (Some(id_key), Some(identifier)) = (identifier_key, value.get("identifier"))
                {
                    self.identifier(id_key, None, identifier);
                }
            }
            t if is_a(t, "uri") => {
                if let Some(s) = value.as_str() {
                    self.reference_row(key, s);
                }
            }
            _ => {}
        }
    }

    fn uri(&mut self, key: ParamKey, item: &Item<'_>) {
        let Item::Node { value, ty } = *item else {
            return;
        };
        if let (true, Some(s)) = (is_a(ty, "uri"), value.as_str()) {
            let row = UriIndex {
                key,
                uri: stored(s),
            };
            self.uris.push(row);
        }
    }

    /// One token row per combination of the components' values, joined by `$` (format in
    /// [`crate::search::query`]).
    fn composite(&mut self, key: ParamKey, compiled: &CompiledParam, item: &Item<'_>) {
        let Item::Node { value, ty } = *item else {
            return;
        };
        let mut combinations = vec![String::new()];
        for (i, component) in compiled.components.iter().enumerate() {
            let Ok(expression) = &component.expression else {
                return;
            };
            let mut values = Vec::new();
            for part in expression.evaluate(value, ty) {
                self.component_values(component.kind, &part, &mut values);
            }
            if values.is_empty() {
                return;
            }
            let mut next = Vec::new();
            'outer: for prefix in &combinations {
                for v in &values {
                    if next.len() == MAX_COMPOSITE_COMBINATIONS {
                        break 'outer;
                    }
                    next.push(if i == 0 {
                        v.clone()
                    } else {
                        format!("{prefix}${v}")
                    });
                }
            }
            combinations = next;
        }
        if compiled.components.is_empty() {
            return;
        }
        for code in combinations {
            self.token_row(key, None, Some(&code), None);
        }
    }

    /// A component's values in their composite form: a token's code, a reference's
    /// `Type/id` (or its URL), a string's normalized form, anything else as written.
    fn component_values(&self, kind: Option<ParamType>, item: &Item<'_>, out: &mut Vec<String>) {
        let (value, ty) = match *item {
            Item::Bool(b) => return out.push(boolean_code(b).to_string()),
            Item::Str(s) => return out.push(s.to_string()),
            Item::Resolved(_) => return,
            Item::Node { value, ty } => (value, ty),
        };
        match ty {
            "Coding" => out.extend(text(value, "code").map(str::to_string)),
            "CodeableConcept" => out.extend(
                array(value, "coding")
                    .filter_map(|c| text(c, "code"))
                    .map(str::to_string),
            ),
            "Identifier" | "ContactPoint" => out.extend(text(value, "value").map(str::to_string)),
            "Reference" => {
                if let Some(r) = text(value, "reference").filter(|r| !r.starts_with('#')) {
                    out.push(match self.local(r) {
                        Some((t, id)) => format!("{t}/{id}"),
                        None => r.to_string(),
                    });
                }
            }
            "boolean" => out.extend(value.as_bool().map(|b| boolean_code(b).to_string())),
            _ => {
                if let Some(s) = value.as_str() {
                    out.push(if kind == Some(ParamType::String) {
                        normalize_string(s)
                    } else {
                        s.to_string()
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::registry::param_key;
    use serde_json::json;
    use std::path::PathBuf;

    const BASE: &str = "https://ledger.example.org/fhir";

    fn example(name: &str) -> Value {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fhir-r4/examples")
            .join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn tokens<'r>(rows: &'r IndexRows, t: &str, name: &str) -> Vec<&'r TokenIndex> {
        let key = param_key(t, name);
        rows.tokens.iter().filter(|r| r.key == key).collect()
    }

    fn token(
        system: Option<&str>,
        code: Option<&str>,
        text: Option<&str>,
    ) -> (Option<String>, Option<String>, Option<String>) {
        (
            system.map(str::to_string),
            code.map(str::to_string),
            text.map(str::to_string),
        )
    }

    fn token_values(
        rows: &IndexRows,
        t: &str,
        name: &str,
    ) -> Vec<(Option<String>, Option<String>, Option<String>)> {
        tokens(rows, t, name)
            .into_iter()
            .map(|r| (r.system.clone(), r.code.clone(), r.text.clone()))
            .collect()
    }

    fn strings(rows: &IndexRows, t: &str, name: &str) -> Vec<(String, String)> {
        let key = param_key(t, name);
        rows.strings
            .iter()
            .filter(|r| r.key == key)
            .map(|r| (r.normalized.clone(), r.exact.clone()))
            .collect()
    }

    fn dates(rows: &IndexRows, t: &str, name: &str) -> Vec<(String, String)> {
        let key = param_key(t, name);
        rows.dates
            .iter()
            .filter(|r| r.key == key)
            .map(|r| (r.low.to_rfc3339(), r.high.to_rfc3339()))
            .collect()
    }

    fn references(
        rows: &IndexRows,
        t: &str,
        name: &str,
    ) -> Vec<(Option<String>, Option<String>, Option<String>)> {
        let key = param_key(t, name);
        rows.references
            .iter()
            .filter(|r| r.key == key)
            .map(|r| (r.target_type.clone(), r.target_id.clone(), r.url.clone()))
            .collect()
    }

    fn local(t: &str, id: &str) -> (Option<String>, Option<String>, Option<String>) {
        (Some(t.to_string()), Some(id.to_string()), None)
    }

    fn url(u: &str) -> (Option<String>, Option<String>, Option<String>) {
        (None, None, Some(u.to_string()))
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn patient_example() {
        let rows = extract(&example("Patient-example.json"), BASE);
        let p = "Patient";
        assert_eq!(
            strings(&rows, p, "family"),
            vec![pair("chalmers", "Chalmers"), pair("windsor", "Windsor")]
        );
        assert_eq!(
            strings(&rows, p, "given"),
            vec![
                pair("peter", "Peter"),
                pair("james", "James"),
                pair("jim", "Jim")
            ]
        );
        let name = strings(&rows, p, "name");
        for part in ["Chalmers", "Peter", "James", "Jim", "Windsor"] {
            assert!(name.iter().any(|(_, exact)| exact == part), "{part}");
        }
        assert_eq!(
            strings(&rows, p, "address-city"),
            vec![pair("pleasantville", "PleasantVille")]
        );
        assert!(strings(&rows, p, "address").contains(&pair("534 erewhon st", "534 Erewhon St")));
        assert_eq!(
            token_values(&rows, p, "identifier"),
            vec![token(
                Some("urn:oid:1.2.36.146.595.217.0.1"),
                Some("12345"),
                None
            )]
        );
        assert_eq!(
            token_values(&rows, p, "identifier:of-type"),
            vec![token(
                Some("http://terminology.hl7.org/CodeSystem/v2-0203"),
                Some("MR|12345"),
                None
            )]
        );
        assert_eq!(
            dates(&rows, p, "birthdate"),
            vec![pair(
                "1974-12-25T00:00:00+00:00",
                "1974-12-25T23:59:59.999999+00:00"
            )]
        );
        assert_eq!(
            token_values(&rows, p, "gender"),
            vec![token(None, Some("male"), None)]
        );
        assert_eq!(
            token_values(&rows, p, "active"),
            vec![token(None, Some("true"), None)]
        );
        assert_eq!(
            token_values(&rows, p, "deceased"),
            vec![token(None, Some("false"), None)]
        );
        assert!(dates(&rows, p, "death-date").is_empty());
        assert_eq!(
            token_values(&rows, p, "_id"),
            vec![token(None, Some("example"), None)]
        );
        assert_eq!(
            references(&rows, p, "organization"),
            vec![local("Organization", "1")]
        );
        assert_eq!(
            token_values(&rows, p, "phone"),
            vec![
                token(Some("phone"), Some("(03) 5555 6473"), None),
                token(Some("phone"), Some("(03) 3410 5613"), None),
                token(Some("phone"), Some("(03) 5555 8834"), None),
            ]
        );
        assert!(token_values(&rows, p, "email").is_empty());
        // the contact's name is not the patient's
        assert!(!strings(&rows, p, "name")
            .iter()
            .any(|(n, _)| n == "du marche"));
    }

    #[test]
    fn document_reference_example() {
        let rows = extract(&example("DocumentReference-example.json"), BASE);
        let d = "DocumentReference";
        assert_eq!(
            references(&rows, d, "subject"),
            vec![local("Patient", "xcda")]
        );
        assert_eq!(
            references(&rows, d, "patient"),
            vec![local("Patient", "xcda")]
        );
        // the contained author (#a2) is not indexed
        assert_eq!(
            references(&rows, d, "author"),
            vec![local("Practitioner", "xcda1")]
        );
        assert_eq!(
            references(&rows, d, "encounter"),
            vec![local("Encounter", "xcda")]
        );
        assert_eq!(
            references(&rows, d, "related"),
            vec![local("Patient", "xcda")]
        );
        assert_eq!(
            token_values(&rows, d, "related:identifier"),
            vec![token(
                Some("urn:ietf:rfc:3986"),
                Some("urn:oid:1.3.6.1.4.1.21367.2005.3.7.2345"),
                None
            )]
        );
        assert_eq!(
            token_values(&rows, d, "type"),
            vec![token(
                Some("http://loinc.org"),
                Some("34108-1"),
                Some("outpatient note")
            )]
        );
        assert_eq!(
            token_values(&rows, d, "identifier"),
            vec![
                token(
                    Some("urn:ietf:rfc:3986"),
                    Some("urn:oid:1.3.6.1.4.1.21367.2005.3.7"),
                    None
                ),
                token(
                    Some("urn:ietf:rfc:3986"),
                    Some("urn:oid:1.3.6.1.4.1.21367.2005.3.7.1234"),
                    None
                ),
            ]
        );
        assert_eq!(
            dates(&rows, d, "date"),
            vec![pair(
                "2005-12-23T22:43:41+00:00",
                "2005-12-23T22:43:41.999999+00:00"
            )]
        );
        assert_eq!(
            dates(&rows, d, "period"),
            vec![pair(
                "2004-12-22T21:00:00+00:00",
                "2004-12-22T21:01:00.999999+00:00"
            )]
        );
        assert_eq!(
            references(&rows, d, "relatesto"),
            vec![local("DocumentReference", "example")]
        );
        assert_eq!(
            token_values(&rows, d, "relation"),
            vec![token(None, Some("appends"), None)]
        );
        assert_eq!(
            token_values(&rows, d, "relationship"),
            vec![token(None, Some("appends$DocumentReference/example"), None)]
        );
        assert_eq!(
            token_values(&rows, d, "contenttype"),
            vec![token(None, Some("application/hl7-v3+xml"), None)]
        );
        assert_eq!(
            rows.uris
                .iter()
                .filter(|u| u.key == param_key(d, "location"))
                .map(|u| u.uri.as_str())
                .collect::<Vec<_>>(),
            vec!["http://example.org/xds/mhd/Binary/07a6483f-732b-461e-86b6-edb665c45510"]
        );
        assert_eq!(
            strings(&rows, d, "description"),
            vec![pair("physical", "Physical")]
        );
        assert_eq!(
            token_values(&rows, d, "status"),
            vec![token(None, Some("current"), None)]
        );
        assert_eq!(
            token_values(&rows, d, "security-label"),
            vec![token(
                Some("http://terminology.hl7.org/CodeSystem/v3-Confidentiality"),
                Some("V"),
                Some("very restricted")
            )]
        );
    }

    #[test]
    fn consent_example() {
        let rows = extract(&example("Consent-consent-example-basic.json"), BASE);
        let c = "Consent";
        assert_eq!(
            references(&rows, c, "patient"),
            vec![local("Patient", "f001")]
        );
        assert_eq!(
            references(&rows, c, "organization"),
            vec![local("Organization", "f001")]
        );
        assert_eq!(
            token_values(&rows, c, "status"),
            vec![token(None, Some("active"), None)]
        );
        assert_eq!(
            token_values(&rows, c, "scope"),
            vec![token(
                Some("http://terminology.hl7.org/CodeSystem/consentscope"),
                Some("patient-privacy"),
                None
            )]
        );
        assert_eq!(
            token_values(&rows, c, "category"),
            vec![token(Some("http://loinc.org"), Some("59284-0"), None)]
        );
        assert_eq!(
            dates(&rows, c, "date"),
            vec![pair(
                "2016-05-11T00:00:00+00:00",
                "2016-05-11T23:59:59.999999+00:00"
            )]
        );
        assert_eq!(
            dates(&rows, c, "period"),
            vec![pair(
                "1964-01-01T00:00:00+00:00",
                "2016-01-01T23:59:59.999999+00:00"
            )]
        );

        let rows = extract(&example("Consent-consent-example-notThem.json"), BASE);
        assert!(!references(&rows, c, "actor").is_empty());
        assert!(!token_values(&rows, c, "action").is_empty());
    }

    #[test]
    fn audit_event_example() {
        let rows = extract(&example("AuditEvent-example.json"), BASE);
        let a = "AuditEvent";
        assert_eq!(
            token_values(&rows, a, "type"),
            vec![token(
                Some("http://dicom.nema.org/resources/ontology/DCM"),
                Some("110100"),
                Some("application activity")
            )]
        );
        assert_eq!(
            token_values(&rows, a, "action"),
            vec![token(None, Some("E"), None)]
        );
        assert_eq!(
            token_values(&rows, a, "outcome"),
            vec![token(None, Some("0"), None)]
        );
        assert_eq!(
            dates(&rows, a, "date"),
            vec![pair(
                "2012-10-25T11:04:27+00:00",
                "2012-10-25T11:04:27.999999+00:00"
            )]
        );
        assert_eq!(
            strings(&rows, a, "address"),
            vec![
                pair("127.0.0.1", "127.0.0.1"),
                pair(
                    "workstation1.ehr.familyclinic.com",
                    "Workstation1.ehr.familyclinic.com"
                )
            ]
        );
        assert_eq!(
            token_values(&rows, a, "altid"),
            vec![token(None, Some("6580"), None)]
        );
        assert_eq!(
            token_values(&rows, a, "agent-role"),
            vec![token(None, None, Some("service user (logon)"))]
        );
        assert_eq!(
            token_values(&rows, a, "site"),
            vec![token(None, Some("Development"), None)]
        );
        // agents and the entity are known by identifier only
        assert!(references(&rows, a, "agent").is_empty());
        assert_eq!(
            token_values(&rows, a, "agent:identifier"),
            vec![
                token(None, Some("Grahame"), None),
                token(
                    Some("urn:oid:2.16.840.1.113883.4.2"),
                    Some("2.16.840.1.113883.4.2"),
                    None
                ),
            ]
        );
        assert_eq!(
            token_values(&rows, a, "entity:identifier"),
            vec![token(None, Some("ABCDEF"), Some("dell serial number"))]
        );
        assert_eq!(
            strings(&rows, a, "entity-name"),
            vec![pair("grahame's laptop", "Grahame's Laptop")]
        );
    }

    #[test]
    fn references_local_absolute_and_foreign() {
        let doc = json!({
            "resourceType": "DocumentReference",
            "status": "current",
            "content": [{"attachment": {"url": "Binary/1"}}],
            "subject": {"reference": format!("{BASE}/Patient/p1/_history/4")},
            "author": [
                {"reference": "Practitioner/d1/_history/2"},
                {"reference": "http://elsewhere.org/fhir/Practitioner/d2"},
                {"reference": "urn:uuid:9d0b4a34-1f9a-4c1e-9a8e-3c2a1c0d2f11"},
                {"reference": "#contained"},
                {"reference": format!("{BASE}/metadata")}
            ],
            "context": {"related": [{"reference": "urn:oid:1.2.3"}]}
        });
        let rows = extract(&doc, &format!("{BASE}/"));
        let d = "DocumentReference";
        assert_eq!(
            references(&rows, d, "subject"),
            vec![local("Patient", "p1")]
        );
        assert_eq!(
            references(&rows, d, "patient"),
            vec![local("Patient", "p1")]
        );
        assert_eq!(
            references(&rows, d, "author"),
            vec![
                local("Practitioner", "d1"),
                url("http://elsewhere.org/fhir/Practitioner/d2"),
                url("urn:uuid:9d0b4a34-1f9a-4c1e-9a8e-3c2a1c0d2f11"),
                url(&format!("{BASE}/metadata")),
            ]
        );
        assert_eq!(references(&rows, d, "related"), vec![url("urn:oid:1.2.3")]);
    }

    #[test]
    fn codeable_concept_text_contact_points_and_deceased() {
        let patient = json!({
            "resourceType": "Patient",
            "maritalStatus": {"text": "x"},
            "communication": [{"language": {
                "coding": [{"system": "urn:ietf:bcp:47", "code": "nl", "display": "Dutch"}],
                "text": "Nederlands"
            }}],
            "telecom": [
                {"system": "email", "value": "a@example.org"},
                {"system": "email", "value": "a@example.org"}
            ],
            "deceasedDateTime": "2020-01-02",
            "identifier": [{"type": {"text": "Medical record"}, "value": "7"}]
        });
        let rows = extract(&patient, BASE);
        let p = "Patient";
        assert_eq!(
            token_values(&rows, p, "language"),
            vec![
                token(Some("urn:ietf:bcp:47"), Some("nl"), Some("dutch")),
                token(None, None, Some("nederlands")),
            ]
        );
        // exact duplicates dropped
        assert_eq!(
            token_values(&rows, p, "email"),
            vec![token(Some("email"), Some("a@example.org"), None)]
        );
        assert_eq!(
            token_values(&rows, p, "deceased"),
            vec![token(None, Some("true"), None)]
        );
        assert_eq!(
            dates(&rows, p, "death-date"),
            vec![pair(
                "2020-01-02T00:00:00+00:00",
                "2020-01-02T23:59:59.999999+00:00"
            )]
        );
        assert_eq!(
            token_values(&rows, p, "identifier"),
            vec![token(None, Some("7"), Some("medical record"))]
        );
        assert!(token_values(&rows, p, "identifier:of-type").is_empty());
    }

    #[test]
    fn long_values_are_cut() {
        let long = "é".repeat(400); // 800 bytes
        let org = json!({
            "resourceType": "Organization",
            "name": long,
            "identifier": [{"system": long, "value": long}]
        });
        let rows = extract(&org, BASE);
        for s in &rows.strings {
            assert!(s.exact.len() <= 512 && s.normalized.len() <= 512);
        }
        for t in &rows.tokens {
            for v in [&t.system, &t.code, &t.text].into_iter().flatten() {
                assert!(v.len() <= 512);
            }
        }
        assert_eq!(strings(&rows, "Organization", "name")[0].1.len(), 512);
    }

    #[test]
    fn unknown_types_index_nothing() {
        assert_eq!(
            extract(&json!({"resourceType": "Observation"}), BASE),
            IndexRows::default()
        );
        assert_eq!(extract(&json!({}), BASE), IndexRows::default());
        assert_eq!(extract(&json!([1, 2]), BASE), IndexRows::default());
    }

    #[test]
    fn timing_events_and_bounds() {
        // No hosted parameter is over a Timing; check the conversion directly.
        let timing = json!({
            "event": ["2020-01-01", "2020-02-01"],
            "repeat": {"boundsPeriod": {"start": "2020-03-01"}}
        });
        let mut rows = Rows::default();
        rows.date(
            1,
            &Item::Node {
                value: &timing,
                ty: "Timing",
            },
        );
        assert_eq!(rows.dates.rows.len(), 3);
        assert_eq!(rows.dates.rows[2].high, DateRange::max_instant());
    }

    #[test]
    fn every_official_example_of_a_hosted_type_is_indexed() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fhir-r4/examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let t = name.split('-').next().unwrap_or_default();
            if !name.ends_with(".json") || !crate::resource_types::is_hosted(t) {
                continue;
            }
            let resource = example(&name);
            let rows = extract(&resource, BASE);
            // every example has an id, so at least its `_id` token
            assert!(
                tokens(&rows, t, "_id").len() == 1,
                "{name}: {:?}",
                rows.tokens
            );
            seen += 1;
        }
        assert!(seen > 70, "{seen} examples");
    }

    /// Extraction cost of a typical document (debug builds are several times slower).
    #[test]
    fn extraction_cost() {
        let doc = example("DocumentReference-example.json");
        let _ = extract(&doc, BASE); // load and compile the registry
        let n = 2000;
        let start = std::time::Instant::now();
        let mut total = 0;
        for _ in 0..n {
            total += extract(&doc, BASE).tokens.len();
        }
        let per = start.elapsed() / n;
        assert!(total > 0);
        let rows = extract(&doc, BASE);
        eprintln!(
            "extract(DocumentReference-example): {per:?} per resource, {} rows",
            rows.tokens.len()
                + rows.strings.len()
                + rows.dates.len()
                + rows.references.len()
                + rows.uris.len()
        );
    }
}
