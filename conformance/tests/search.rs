//! FHIR R4 search (http://hl7.org/fhir/R4/search.html) over HTTP: every parameter type with
//! its modifiers and prefixes, OR and AND, chains and `_has`, `_include`/`_revinclude`,
//! sorting, paging (also while resources are being added), the result parameters, `POST
//! _search`, errors, XML, and the search parameters of the CapabilityStatement.
//!
//! Isolation: every test tags what it creates with its own `meta.tag` (system
//! [`TAG_SYSTEM`], code a fresh uid) and scopes every search with `_tag`, so tests running
//! in parallel on the shared server and database never see each other's resources.
//! Expected results are computed here, from the data the test created, with the semantics
//! documented in `fhir-profiles/src/search/query.rs` (dates: the closed range of instants a
//! value covers at its precision, no zone meaning UTC).
//!
//! Most tests run many searches and report every mismatch at once: each line names the
//! request, what was expected and what came back.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use conformance::*;
use serde_json::{json, Value};

/// The `meta.tag` system of everything these tests create.
const TAG_SYSTEM: &str = "urn:fhirledger:search-test";
/// Another identifier system, for identifier and chain searches.
const MRN_SYSTEM: &str = "urn:fhirledger:search-test:mrn";
const LOINC: &str = "http://loinc.org";
const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
const SUBSETTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

// ---------------------------------------------------------------------------------------
// Building resources and queries
// ---------------------------------------------------------------------------------------

/// `_tag=<system>|<code>`, encoded.
fn tag_param(tag: &str) -> String {
    format!("_tag={}", url_encode(&format!("{TAG_SYSTEM}|{tag}")))
}

/// `resource` with `meta.tag` set to the test's tag.
fn tagged(resource: &Value, tag: &str) -> Value {
    let mut r = resource.clone();
    r["meta"] = json!({"tag": [{"system": TAG_SYSTEM, "code": tag}]});
    r
}

/// `base` with the top-level properties of `extra` added (or replaced).
fn with(base: Value, extra: Value) -> Value {
    let mut out = base;
    if let (Some(o), Some(e)) = (out.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    out
}

fn pat(extra: Value) -> Value {
    with(json!({"resourceType": "Patient"}), extra)
}

fn practitioner_named(family: &str, given: &str) -> Value {
    json!({"resourceType": "Practitioner", "name": [{"family": family, "given": [given]}]})
}

/// A DocumentReference with a small attachment and `extra` properties.
fn doc(extra: Value) -> Value {
    with(
        json!({
            "resourceType": "DocumentReference",
            "status": "current",
            "content": [{"attachment": {"contentType": "text/plain", "title": "note.txt"}}]
        }),
        extra,
    )
}

fn loinc_type(code: &str, display: &str) -> Value {
    json!({"coding": [{"system": LOINC, "code": code, "display": display}]})
}

fn reference(to: &str) -> Value {
    json!({"reference": to})
}

// ---------------------------------------------------------------------------------------
// Creating many resources: transaction Bundles when the server takes them, else parallel
// single creates
// ---------------------------------------------------------------------------------------

/// Set once a transaction Bundle was refused, so the rest of the run creates one by one.
static TRANSACTIONS_REFUSED: AtomicBool = AtomicBool::new(false);

/// Runs `f` on every item with up to `threads` threads; results in item order.
fn par_map<T: Sync, R: Send>(items: &[T], threads: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= items.len() {
                    break;
                }
                let r = f(&items[i]);
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.expect("every item was processed"))
        .collect()
}

/// The id in an entry's `response.location` (`Type/id/_history/n`, relative or absolute).
fn location_id(entry: &Value) -> Option<String> {
    let loc = entry["response"]["location"].as_str()?;
    let rel = loc
        .strip_prefix(&format!("{}/", base()))
        .unwrap_or(loc)
        .to_string();
    rel.split('/').nth(1).map(str::to_string)
}

/// POSTs `resources` as one transaction; their ids in order, or why the server refused.
/// A 200 answer that does not account for every entry panics: the resources may exist.
fn create_by_transaction(resources: &[Value]) -> Result<Vec<String>, String> {
    let entries: Vec<Value> = resources
        .iter()
        .map(|r| {
            json!({
                "fullUrl": format!("urn:uuid:{}", uuid_like()),
                "resource": r,
                "request": {"method": "POST", "url": r["resourceType"]}
            })
        })
        .collect();
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    let resp = post(&base())
        .json(&bundle)
        .prefer("return=minimal")
        .try_send()?;
    if resp.status != 200 {
        return Err(format!(
            "HTTP {}: {}",
            resp.status,
            snippet(&resp.body, 500)
        ));
    }
    let out = resp.json();
    let got = entries_of(&out);
    if out["type"] != "transaction-response" || got.len() != resources.len() {
        resp.fail(&format!(
            "a transaction of {} creates answered 200 without one response entry per create",
            resources.len()
        ));
    }
    got.iter()
        .map(|e| {
            let status = e["response"]["status"].as_str().unwrap_or_default();
            match location_id(e) {
                Some(id) if status.starts_with("201") => Ok(id),
                _ => resp.fail(&format!(
                    "a transaction entry answered without 201 and a location: {e}"
                )),
            }
        })
        .collect()
}

/// A random UUID-shaped string (for `urn:uuid:` fullUrls).
fn uuid_like() -> String {
    let h = uid();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Creates every resource (transaction Bundles of up to 1,000 entries, two at a time; one
/// by one on eight threads when the server refuses transactions); their ids in order.
fn create_all(resources: &[Value]) -> Vec<String> {
    let chunks: Vec<&[Value]> = resources.chunks(1000).collect();
    par_map(&chunks, 2, |chunk| {
        if chunk.len() > 1 && !TRANSACTIONS_REFUSED.load(Ordering::SeqCst) {
            match create_by_transaction(chunk) {
                Ok(ids) => return ids,
                Err(e) => {
                    if !TRANSACTIONS_REFUSED.swap(true, Ordering::SeqCst) {
                        eprintln!(
                            "search tests: transaction Bundles refused ({e}); creating one by one"
                        );
                    }
                }
            }
        }
        par_map(chunk, 8, |r| id_of(&create(r)))
    })
    .into_iter()
    .flatten()
    .collect()
}

// ---------------------------------------------------------------------------------------
// Searching without panicking, so one test can report many mismatches
// ---------------------------------------------------------------------------------------

fn entries_of(bundle: &Value) -> Vec<Value> {
    bundle["entry"].as_array().cloned().unwrap_or_default()
}

/// GETs a search page (relative to the base, or absolute): a `searchset` Bundle, or a
/// description of what came back instead.
fn fetch(path: &str) -> Result<Value, String> {
    let full = url(path);
    let resp = get(&full).try_send()?;
    if resp.status != 200 {
        return Err(format!(
            "GET {full}\n    -> HTTP {}: {}",
            resp.status,
            snippet(&resp.body, 600)
        ));
    }
    let v: Value = serde_json::from_slice(&resp.body)
        .map_err(|e| format!("GET {full}\n    -> the body is not JSON: {e}"))?;
    if v["resourceType"] != "Bundle" || v["type"] != "searchset" {
        return Err(format!(
            "GET {full}\n    -> not a searchset Bundle: {}",
            snippet(&resp.body, 600)
        ));
    }
    Ok(v)
}

/// The search mode of an entry (`match` when the server gives none).
fn mode_of(entry: &Value) -> &str {
    entry["search"]["mode"].as_str().unwrap_or("match")
}

/// Ids of the `match` entries of a page, in order.
fn match_ids(bundle: &Value) -> Vec<String> {
    entries_of(bundle)
        .iter()
        .filter(|e| mode_of(e) == "match")
        .map(|e| {
            e["resource"]["id"]
                .as_str()
                .unwrap_or("<no id>")
                .to_string()
        })
        .collect()
}

fn link_of(bundle: &Value, relation: &str) -> Option<String> {
    link(bundle, relation)
}

/// Every page from `first`, following `next` (at most 100 pages).
fn walk(first: &str) -> Result<Vec<Value>, String> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_string());
    while let Some(u) = next {
        if pages.len() == 100 {
            return Err(format!("GET {}: more than 100 pages", url(first)));
        }
        let page = fetch(&u)?;
        next = link_of(&page, "next");
        pages.push(page);
    }
    Ok(pages)
}

/// The ids of every match of a search, over all pages, in order.
fn all_match_ids(first: &str) -> Result<Vec<String>, String> {
    Ok(walk(first)?.iter().flat_map(match_ids).collect())
}

/// Panics listing every failed check.
fn report(what: &str, total: usize, failures: Vec<String>) {
    if !failures.is_empty() {
        panic!(
            "{what}: {} of {total} checks failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
}

/// Labelled resources created by one test, all carrying its tag.
struct Fx {
    tag: String,
    ids: BTreeMap<String, String>,
    labels: HashMap<String, String>,
}

/// One search and the labels of what it must find.
type Case = (String, Vec<String>);

fn case(q: impl Into<String>, expected: &[&str]) -> Case {
    (q.into(), expected.iter().map(|s| s.to_string()).collect())
}

impl Fx {
    fn new() -> Fx {
        Fx {
            tag: uid(),
            ids: BTreeMap::new(),
            labels: HashMap::new(),
        }
    }

    /// Creates the resources, tagged, under their labels.
    fn add(&mut self, items: Vec<(&str, Value)>) {
        let resources: Vec<Value> = items.iter().map(|(_, r)| tagged(r, &self.tag)).collect();
        let ids = create_all(&resources);
        for ((label, _), id) in items.iter().zip(ids) {
            assert!(
                self.ids.insert(label.to_string(), id.clone()).is_none(),
                "test bug: label {label} used twice"
            );
            self.labels.insert(id, label.to_string());
        }
    }

    /// Creates one resource, tagged, under its label; returns the stored resource.
    fn add_one(&mut self, label: &str, resource: Value) -> Value {
        let created = create(&tagged(&resource, &self.tag));
        let id = id_of(&created);
        self.ids.insert(label.to_string(), id.clone());
        self.labels.insert(id, label.to_string());
        created
    }

    fn id(&self, label: &str) -> String {
        self.ids
            .get(label)
            .unwrap_or_else(|| panic!("test bug: no resource labelled {label}"))
            .clone()
    }

    fn label(&self, id: &str) -> String {
        self.labels
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("<not created by this test: {id}>"))
    }

    fn labels_of(&self, ids: &[String]) -> Vec<String> {
        ids.iter().map(|id| self.label(id)).collect()
    }

    /// `{rt}?_tag=…&{q}`.
    fn scoped(&self, rt: &str, q: &str) -> String {
        if q.is_empty() {
            format!("{rt}?{}", tag_param(&self.tag))
        } else {
            format!("{rt}?{}&{q}", tag_param(&self.tag))
        }
    }

    /// The labels of every match of `{rt}?_tag=…&{q}`, in order.
    fn found(&self, rt: &str, q: &str) -> Result<Vec<String>, String> {
        Ok(self.labels_of(&all_match_ids(&self.scoped(rt, q))?))
    }

    /// Checks that the scoped search finds exactly `expected` (any order, each once).
    fn check(&self, rt: &str, q: &str, expected: &[String]) -> Result<(), String> {
        let got = self.found(rt, q)?;
        let want: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
        let got_set: BTreeSet<&str> = got.iter().map(String::as_str).collect();
        let duplicated = got.len() != got_set.len();
        if got_set == want && !duplicated {
            return Ok(());
        }
        let missing: Vec<&&str> = want.difference(&got_set).collect();
        let extra: Vec<&&str> = got_set.difference(&want).collect();
        Err(format!(
            "GET {}\n    expected {want:?}\n    got      {got:?}\n    missing {missing:?}, unexpected {extra:?}{}",
            url(&self.scoped(rt, q)),
            if duplicated { ", and some more than once" } else { "" }
        ))
    }

    /// Runs every case (in parallel) and panics listing all that failed.
    fn check_all(&self, rt: &str, what: &str, cases: &[Case]) {
        let failures: Vec<String> = par_map(cases, 6, |(q, expected)| self.check(rt, q, expected))
            .into_iter()
            .filter_map(Result::err)
            .collect();
        report(what, cases.len(), failures);
    }

    /// Checks that the scoped search finds every label of `must` and none of `must_not`.
    fn check_bounds(
        &self,
        rt: &str,
        q: &str,
        must: &[String],
        must_not: &[String],
    ) -> Result<(), String> {
        let got = self.found(rt, q)?;
        let missing: Vec<&String> = must.iter().filter(|l| !got.contains(l)).collect();
        let wrong: Vec<&String> = must_not.iter().filter(|l| got.contains(l)).collect();
        if missing.is_empty() && wrong.is_empty() {
            return Ok(());
        }
        Err(format!(
            "GET {}\n    must find {must:?}\n    must not find {must_not:?}\n    got {got:?}\n    missing {missing:?}, unexpected {wrong:?}",
            url(&self.scoped(rt, q))
        ))
    }

    /// Checks that the scoped search returns exactly `expected`, in that order.
    fn check_order(&self, rt: &str, q: &str, expected: &[&str]) -> Result<(), String> {
        let got = self.found(rt, q)?;
        if got == expected {
            return Ok(());
        }
        Err(format!(
            "GET {}\n    expected in this order {expected:?}\n    got                    {got:?}",
            url(&self.scoped(rt, q))
        ))
    }
}

/// Asserts the diagnostics (or details) of an OperationOutcome mention `needle`.
#[track_caller]
fn assert_outcome_mentions(resp: &Response, outcome: &Value, needle: &str) {
    let text: String = outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| format!("{} {} ", i["diagnostics"], i["details"]["text"]))
        .collect();
    if !text.contains(needle) {
        resp.fail(&format!(
            "the OperationOutcome should name '{needle}'; its issues say: {text}"
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Dates: the ranges of FHIR date values, computed independently of the server
// ---------------------------------------------------------------------------------------

const US_PER_SEC: i64 = 1_000_000;
const US_PER_DAY: i64 = 86_400 * US_PER_SEC;

/// Days from 1970-01-01 to a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count from 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn bad_date(s: &str) -> ! {
    panic!("test bug: '{s}' is not a date this test understands")
}

fn num(s: &str, whole: &str) -> i64 {
    s.parse().unwrap_or_else(|_| bad_date(whole))
}

/// The closed range of instants (µs since 1970-01-01T00:00:00Z) that a FHIR date,
/// dateTime or instant covers at the precision it is written in (`2021` is all of 2021,
/// `…T10:30` one minute, `…T10:30:00Z` one second, `.5` a tenth); no zone means UTC.
fn range(s: &str) -> (i64, i64) {
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let f: Vec<i64> = date.split('-').map(|p| num(p, s)).collect();
    let day = |y: i64, m: i64, d: i64| days_from_civil(y, m, d) * US_PER_DAY;
    match (f.as_slice(), time) {
        ([y], None) => (day(*y, 1, 1), day(y + 1, 1, 1) - 1),
        ([y, m], None) => {
            let (ny, nm) = if *m == 12 { (y + 1, 1) } else { (*y, m + 1) };
            (day(*y, *m, 1), day(ny, nm, 1) - 1)
        }
        ([y, m, d], None) => (day(*y, *m, *d), day(*y, *m, *d) + US_PER_DAY - 1),
        ([y, m, d], Some(t)) => {
            let (clock, offset) = if let Some(c) = t.strip_suffix('Z') {
                (c, 0)
            } else if t.len() > 6 && matches!(t.as_bytes()[t.len() - 6], b'+' | b'-') {
                let (c, z) = t.split_at(t.len() - 6);
                let sign = if z.starts_with('-') { -1 } else { 1 };
                let secs = num(&z[1..3], s) * 3600 + num(&z[4..6], s) * 60;
                (c, sign * secs * US_PER_SEC)
            } else {
                (t, 0)
            };
            let parts: Vec<&str> = clock.split(':').collect();
            if parts.len() < 2 {
                bad_date(s);
            }
            let mut low =
                day(*y, *m, *d) + (num(parts[0], s) * 3600 + num(parts[1], s) * 60) * US_PER_SEC;
            let width = match parts.get(2) {
                None => 60 * US_PER_SEC,
                Some(sec) => match sec.split_once('.') {
                    None => {
                        low += num(sec, s) * US_PER_SEC;
                        US_PER_SEC
                    }
                    Some((whole, frac)) => {
                        let n = frac.len().min(6);
                        low += num(whole, s) * US_PER_SEC + num(&format!("{:0<6}", &frac[..n]), s);
                        10i64.pow(6 - n as u32)
                    }
                },
            };
            let low = low - offset;
            (low, low + width - 1)
        }
        _ => bad_date(s),
    }
}

/// The range of a Period; a missing start or end is open.
fn period_range(start: Option<&str>, end: Option<&str>) -> (i64, i64) {
    let min = days_from_civil(1, 1, 1) * US_PER_DAY;
    let max = days_from_civil(9999, 12, 31) * US_PER_DAY + US_PER_DAY - 1;
    (
        start.map_or(min, |s| range(s).0),
        end.map_or(max, |e| range(e).1),
    )
}

/// `YYYY-MM-DDThh:mm:ss.ffffffZ` of an instant in µs since 1970.
fn format_instant(us: i64) -> String {
    let days = us.div_euclid(US_PER_DAY);
    let rest = us.rem_euclid(US_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let secs = rest / US_PER_SEC;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        rest % US_PER_SEC
    )
}

fn now_us() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    d.as_micros() as i64
}

/// The prefixes with an exact meaning (`ap` is tested on its own).
const PREFIXES: [&str; 8] = ["eq", "ne", "lt", "gt", "le", "ge", "sa", "eb"];

/// Whether an indexed range `r` matches the search value range `p` under `prefix`
/// (R4 3.1.1.4.2, as `query.rs` words it).
fn prefix_holds(prefix: &str, p: (i64, i64), r: (i64, i64)) -> bool {
    let eq = r.0 >= p.0 && r.1 <= p.1;
    match prefix {
        "" | "eq" => eq,
        "ne" => !eq,
        "gt" => r.1 > p.1,
        "lt" => r.0 < p.0,
        "ge" => r.1 > p.1 || eq,
        "le" => r.0 < p.0 || eq,
        "sa" => r.0 > p.1,
        "eb" => r.1 < p.0,
        other => panic!("test bug: prefix {other}"),
    }
}

/// Every prefix (and none) on every target value of date parameter `param`; `values` are
/// the labelled resources with the range their value covers (`None`: no value, found by
/// no date search).
fn date_cases(param: &str, targets: &[&str], values: &[(&str, Option<(i64, i64)>)]) -> Vec<Case> {
    let mut cases = Vec::new();
    for target in targets {
        let p = range(target);
        for prefix in PREFIXES.iter().copied().chain([""]) {
            let expected: Vec<&str> = values
                .iter()
                .filter(|(_, r)| r.is_some_and(|r| prefix_holds(prefix, p, r)))
                .map(|(label, _)| *label)
                .collect();
            cases.push(case(
                format!("{param}={}", url_encode(&format!("{prefix}{target}"))),
                &expected,
            ));
        }
    }
    cases
}

// ---------------------------------------------------------------------------------------
// token
// ---------------------------------------------------------------------------------------

/// DocumentReferences whose `type` differs in system, code, display and text.
fn token_fixture() -> Fx {
    let mut fx = Fx::new();
    fx.add(vec![
        ("loinc 11506-3", doc(json!({"type": loinc_type("11506-3", "Progress note")}))),
        ("loinc 18842-5", doc(json!({"type": loinc_type("18842-5", "Discharge summary")}))),
        (
            "other-system 11506-3",
            doc(json!({"type": {"coding": [{"system": "http://example.org/codes", "code": "11506-3", "display": "Something else"}]}})),
        ),
        (
            "no-system X1 + text",
            doc(json!({"type": {"coding": [{"code": "X1"}], "text": "Scanned letter"}})),
        ),
        ("no type", doc(json!({"status": "superseded"}))),
    ]);
    fx
}

#[test]
fn token_code_system_and_no_system_forms() {
    let fx = token_fixture();
    let all_typed = [
        "loinc 11506-3",
        "loinc 18842-5",
        "other-system 11506-3",
        "no-system X1 + text",
    ];
    fx.check_all(
        "DocumentReference",
        "token forms",
        &[
            case("type=11506-3", &["loinc 11506-3", "other-system 11506-3"]),
            case(
                format!("type={}", url_encode("http://loinc.org|11506-3")),
                &["loinc 11506-3"],
            ),
            case(
                format!("type={}", url_encode("http://example.org/codes|11506-3")),
                &["other-system 11506-3"],
            ),
            case(
                format!("type={}", url_encode("|X1")),
                &["no-system X1 + text"],
            ),
            case(format!("type={}", url_encode("|11506-3")), &[]),
            case(
                format!("type={}", url_encode("http://loinc.org|")),
                &["loinc 11506-3", "loinc 18842-5"],
            ),
            case(format!("type={}", url_encode("http://loinc.org|X1")), &[]),
            case("type=11506", &[]),
            case("status=current", &all_typed),
            case("status=superseded", &["no type"]),
        ],
    );
}

#[test]
fn token_not_text_and_missing() {
    let fx = token_fixture();
    fx.check_all(
        "DocumentReference",
        "token :not, :text, :missing",
        &[
            case(
                format!("type:not={}", url_encode("http://loinc.org|11506-3")),
                &[
                    "loinc 18842-5",
                    "other-system 11506-3",
                    "no-system X1 + text",
                    "no type",
                ],
            ),
            case(
                "type:not=11506-3",
                &["loinc 18842-5", "no-system X1 + text", "no type"],
            ),
            case("status:not=current", &["no type"]),
            case("type:text=progress", &["loinc 11506-3"]),
            case("type:text=DISCHARGE%20SUM", &["loinc 18842-5"]),
            case("type:text=scanned", &["no-system X1 + text"]),
            case("type:missing=true", &["no type"]),
            case(
                "type:missing=false",
                &[
                    "loinc 11506-3",
                    "loinc 18842-5",
                    "other-system 11506-3",
                    "no-system X1 + text",
                ],
            ),
        ],
    );
}

#[test]
fn token_identifier_of_type() {
    let mut fx = Fx::new();
    let mr = |value: &str, code: &str| {
        pat(json!({"identifier": [{
            "type": {"coding": [{"system": V2_0203, "code": code}]},
            "system": MRN_SYSTEM,
            "value": value
        }]}))
    };
    fx.add(vec![
        ("MR 12345", mr("12345", "MR")),
        ("MR 99999", mr("99999", "MR")),
        ("DL 12345", mr("12345", "DL")),
        (
            "untyped 12345",
            pat(json!({"identifier": [{"system": MRN_SYSTEM, "value": "12345"}]})),
        ),
    ]);
    fx.check_all(
        "Patient",
        "identifier and :of-type",
        &[
            case(
                format!(
                    "identifier:of-type={}",
                    url_encode(&format!("{V2_0203}|MR|12345"))
                ),
                &["MR 12345"],
            ),
            case(
                format!(
                    "identifier:of-type={}",
                    url_encode(&format!("{V2_0203}|DL|12345"))
                ),
                &["DL 12345"],
            ),
            case(
                format!(
                    "identifier:of-type={}",
                    url_encode(&format!("{V2_0203}|MR|00000"))
                ),
                &[],
            ),
            case(
                format!(
                    "identifier:of-type={}",
                    url_encode("http://example.org/other|MR|12345")
                ),
                &[],
            ),
            case(
                format!("identifier={}", url_encode(&format!("{MRN_SYSTEM}|12345"))),
                &["MR 12345", "DL 12345", "untyped 12345"],
            ),
            case("identifier=99999", &["MR 99999"]),
        ],
    );
}

/// Booleans and codes are tokens too; `\\|` and `\\,` escape the separators in a value.
#[test]
fn token_booleans_codes_and_escaped_separators() {
    let mut fx = Fx::new();
    fx.add(vec![
        (
            "active female, value a|b",
            pat(json!({"active": true, "gender": "female",
                "identifier": [{"system": MRN_SYSTEM, "value": "a|b"}]})),
        ),
        (
            "inactive male, value a,b",
            pat(json!({"active": false, "gender": "male",
                "identifier": [{"system": MRN_SYSTEM, "value": "a,b"}]})),
        ),
        ("no active, other", pat(json!({"gender": "other"}))),
    ]);
    let e = url_encode;
    fx.check_all(
        "Patient",
        "booleans, codes, escapes",
        &[
            case("active=true", &["active female, value a|b"]),
            case("active=false", &["inactive male, value a,b"]),
            case(
                "active:not=true",
                &["inactive male, value a,b", "no active, other"],
            ),
            case("active:missing=true", &["no active, other"]),
            case(
                "gender=female,male",
                &["active female, value a|b", "inactive male, value a,b"],
            ),
            case(
                "gender:not=female",
                &["inactive male, value a,b", "no active, other"],
            ),
            case("gender=FEMALE", &[]),
            case(
                format!("identifier={}", e(&format!("{MRN_SYSTEM}|a\\|b"))),
                &["active female, value a|b"],
            ),
            case(
                format!("identifier={}", e("a\\|b")),
                &["active female, value a|b"],
            ),
            case(
                format!("identifier={}", e(&format!("{MRN_SYSTEM}|a\\,b"))),
                &["inactive male, value a,b"],
            ),
            // Unescaped, the comma separates two values, neither of which exists.
            case(
                format!("identifier={}", e(&format!("{MRN_SYSTEM}|a,b"))),
                &[],
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// reference
// ---------------------------------------------------------------------------------------

#[test]
fn reference_forms_relative_bare_absolute_and_typed() {
    let mut fx = Fx::new();
    fx.add(vec![("P1", pat(json!({}))), ("P2", pat(json!({})))]);
    let (p1, p2) = (fx.id("P1"), fx.id("P2"));
    fx.add(vec![
        (
            "D1 -> Patient/P1",
            doc(json!({"subject": reference(&format!("Patient/{p1}"))})),
        ),
        (
            "D2 -> Patient/P2",
            doc(json!({"subject": reference(&format!("Patient/{p2}"))})),
        ),
        (
            "D3 -> {base}/Patient/P1",
            doc(json!({"subject": reference(&format!("{}/Patient/{p1}", base()))})),
        ),
        ("D4 no subject", doc(json!({}))),
        (
            "D5 -> Patient/P1/_history/1",
            doc(json!({"subject": reference(&format!("Patient/{p1}/_history/1"))})),
        ),
    ]);
    let p1_docs = [
        "D1 -> Patient/P1",
        "D3 -> {base}/Patient/P1",
        "D5 -> Patient/P1/_history/1",
    ];
    let abs = url_encode(&format!("{}/Patient/{p1}", base()));
    fx.check_all(
        "DocumentReference",
        "reference forms",
        &[
            case(format!("subject=Patient/{p1}"), &p1_docs),
            case(format!("subject={p1}"), &p1_docs),
            case(format!("subject={abs}"), &p1_docs),
            case(format!("subject:Patient={p1}"), &p1_docs),
            case(format!("patient={p1}"), &p1_docs),
            case(format!("patient=Patient/{p1}"), &p1_docs),
            case(format!("patient={abs}"), &p1_docs),
            case(format!("patient={p2}"), &["D2 -> Patient/P2"]),
            case(format!("subject=Patient/{}", uid()), &[]),
            case(
                format!(
                    "subject={}",
                    url_encode(&format!("http://elsewhere.example.org/fhir/Patient/{p1}"))
                ),
                &[],
            ),
            case(
                format!(
                    "subject:missing=true&_id={},{}",
                    fx.id("D4 no subject"),
                    fx.id("D1 -> Patient/P1")
                ),
                &["D4 no subject"],
            ),
            case(
                "subject:missing=false",
                &[
                    "D1 -> Patient/P1",
                    "D2 -> Patient/P2",
                    "D3 -> {base}/Patient/P1",
                    "D5 -> Patient/P1/_history/1",
                ],
            ),
        ],
    );
}

#[test]
fn reference_identifier_modifier() {
    let mut fx = Fx::new();
    let value = uid();
    fx.add(vec![
        (
            "by identifier",
            doc(json!({"subject": {"identifier": {"system": MRN_SYSTEM, "value": value}}})),
        ),
        (
            "by identifier and reference",
            doc(json!({"subject": {"reference": format!("Patient/{}", new_patient()), "identifier": {"system": MRN_SYSTEM, "value": value}}})),
        ),
        (
            "other identifier",
            doc(json!({"subject": {"identifier": {"system": MRN_SYSTEM, "value": uid()}}})),
        ),
    ]);
    fx.check_all(
        "DocumentReference",
        "reference :identifier",
        &[
            case(
                format!(
                    "subject:identifier={}",
                    url_encode(&format!("{MRN_SYSTEM}|{value}"))
                ),
                &["by identifier", "by identifier and reference"],
            ),
            case(
                format!("subject:identifier={value}"),
                &["by identifier", "by identifier and reference"],
            ),
            case(
                format!(
                    "subject:identifier={}",
                    url_encode(&format!("urn:other|{value}"))
                ),
                &[],
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// date
// ---------------------------------------------------------------------------------------

/// DocumentReference.date (instants) values; the last has none.
const DOC_DATES: [&str; 10] = [
    "2021-03-15T10:30:00Z",
    "2021-03-15T10:30:45Z",
    "2021-03-15T10:30:00.500Z",
    "2021-03-15T23:59:59Z",
    "2021-03-16T00:00:00Z",
    "2021-03-15T00:30:00+02:00",
    "2020-12-31T23:00:00-02:00",
    "2021-04-01T12:00:00+02:00",
    "2022-06-01T00:00:00Z",
    "2019-01-01T00:00:00Z",
];

fn doc_date_fixture() -> Fx {
    let mut fx = Fx::new();
    let mut items: Vec<(&str, Value)> = DOC_DATES
        .iter()
        .map(|d| (*d, doc(json!({"date": d}))))
        .collect();
    items.push(("no date", doc(json!({}))));
    fx.add(items);
    fx
}

#[test]
fn date_prefixes_on_instants() {
    let fx = doc_date_fixture();
    let mut values: Vec<(&str, Option<(i64, i64)>)> =
        DOC_DATES.iter().map(|d| (*d, Some(range(d)))).collect();
    values.push(("no date", None));
    let targets = [
        "2021",
        "2021-03",
        "2021-03-15",
        "2021-03-15T10:30",
        "2021-03-15T10:30:00Z",
        "2021-03-15T12:30:00+02:00",
        "2021-03-15T10:30:00.5Z",
    ];
    fx.check_all(
        "DocumentReference",
        "DocumentReference.date prefixes",
        &date_cases("date", &targets, &values),
    );
}

#[test]
fn date_prefixes_on_dates() {
    let mut fx = Fx::new();
    let dates = [
        "1980",
        "1980-02",
        "1980-02-29",
        "1980-03-01",
        "1979-12-31",
        "1981-01-01",
        "1980-12-31",
    ];
    let mut items: Vec<(&str, Value)> = dates
        .iter()
        .map(|d| (*d, pat(json!({"birthDate": d}))))
        .collect();
    items.push(("no birthDate", pat(json!({}))));
    fx.add(items);
    let mut values: Vec<(&str, Option<(i64, i64)>)> =
        dates.iter().map(|d| (*d, Some(range(d)))).collect();
    values.push(("no birthDate", None));
    let targets = [
        "1980",
        "1980-02",
        "1980-02-29",
        "1980-02-29T12:00",
        "1980-03-01T00:00:00Z",
    ];
    fx.check_all(
        "Patient",
        "Patient.birthdate prefixes",
        &[
            date_cases("birthdate", &targets, &values),
            vec![
                case("birthdate:missing=true", &["no birthDate"]),
                case("birthdate:missing=false", &dates),
                // A comma ORs date values, a repeat ANDs them (a range).
                case(
                    format!("birthdate={}", url_encode("1979-12-31,1981-01-01")),
                    &["1979-12-31", "1981-01-01"],
                ),
                case(
                    format!(
                        "birthdate={}&birthdate={}",
                        url_encode("ge1980-02"),
                        url_encode("lt1980-03-02")
                    ),
                    &dates
                        .iter()
                        .copied()
                        .filter(|d| {
                            prefix_holds("ge", range("1980-02"), range(d))
                                && prefix_holds("lt", range("1980-03-02"), range(d))
                        })
                        .collect::<Vec<_>>(),
                ),
            ],
        ]
        .concat(),
    );
}

/// Periods (start, end), open-ended ones included.
const PERIODS: [(&str, Option<&str>, Option<&str>); 6] = [
    (
        "[2021-01-01, 2021-06-30]",
        Some("2021-01-01"),
        Some("2021-06-30"),
    ),
    (
        "[2021-03-15T08:00Z, 2021-03-15T17:00Z]",
        Some("2021-03-15T08:00:00Z"),
        Some("2021-03-15T17:00:00Z"),
    ),
    ("[2021-05-01, open)", Some("2021-05-01"), None),
    ("(open, 2020-12-31]", None, Some("2020-12-31")),
    (
        "[2019-01-01, 2023-12-31T23:59:59Z]",
        Some("2019-01-01T00:00:00Z"),
        Some("2023-12-31T23:59:59Z"),
    ),
    ("[2021-03, 2021-03]", Some("2021-03"), Some("2021-03")),
];

fn period_json(start: Option<&str>, end: Option<&str>) -> Value {
    let mut p = json!({});
    if let Some(s) = start {
        p["start"] = json!(s);
    }
    if let Some(e) = end {
        p["end"] = json!(e);
    }
    p
}

fn period_values() -> Vec<(&'static str, Option<(i64, i64)>)> {
    let mut values: Vec<(&str, Option<(i64, i64)>)> = PERIODS
        .iter()
        .map(|(l, s, e)| (*l, Some(period_range(*s, *e))))
        .collect();
    values.push(("no period", None));
    values
}

const PERIOD_TARGETS: [&str; 7] = [
    "2021",
    "2021-03",
    "2021-03-15",
    "2021-03-15T10:30",
    "2021-03-15T10:30:00Z",
    "2024",
    "1999",
];

#[test]
fn date_prefixes_on_document_reference_periods() {
    let mut fx = Fx::new();
    let mut items: Vec<(&str, Value)> = PERIODS
        .iter()
        .map(|(l, s, e)| (*l, doc(json!({"context": {"period": period_json(*s, *e)}}))))
        .collect();
    items.push(("no period", doc(json!({}))));
    fx.add(items);
    fx.check_all(
        "DocumentReference",
        "DocumentReference.context.period prefixes",
        &[
            date_cases("period", &PERIOD_TARGETS, &period_values()),
            vec![
                case("period:missing=true", &["no period"]),
                case(
                    "period:missing=false",
                    &PERIODS.iter().map(|(l, _, _)| *l).collect::<Vec<_>>(),
                ),
            ],
        ]
        .concat(),
    );
}

#[test]
fn date_prefixes_on_consent_periods() {
    let patient = new_patient();
    let mut fx = Fx::new();
    let mut items: Vec<(&str, Value)> = PERIODS
        .iter()
        .map(|(l, s, e)| {
            let mut c = consent(&patient, &uid());
            c["provision"]["period"] = period_json(*s, *e);
            (*l, c)
        })
        .collect();
    items.push(("no period", consent(&patient, &uid())));
    fx.add(items);
    fx.check_all(
        "Consent",
        "Consent.provision.period prefixes",
        &date_cases("period", &PERIOD_TARGETS, &period_values()),
    );
}

/// `ap`: R overlaps P widened on both sides by a tenth of the distance from now to P (at
/// least a day). Only values clearly inside (gap under 80% of that margin) or clearly
/// outside (over 125%) are asserted.
fn ap_cases(
    param: &str,
    targets: &[&str],
    values: &[(&str, Option<(i64, i64)>)],
) -> Vec<(String, Vec<String>, Vec<String>)> {
    let now = now_us();
    targets
        .iter()
        .map(|t| {
            let p = range(t);
            let distance = if p.0 > now { p.0 - now } else { now - p.1 };
            let margin = (distance.abs() / 10).max(US_PER_DAY);
            let mut must = Vec::new();
            let mut must_not = Vec::new();
            for (label, r) in values {
                let Some(r) = r else {
                    must_not.push(label.to_string());
                    continue;
                };
                let gap = if r.1 < p.0 {
                    p.0 - r.1
                } else if r.0 > p.1 {
                    r.0 - p.1
                } else {
                    0
                };
                if gap * 5 <= margin * 4 {
                    must.push(label.to_string());
                } else if gap * 4 >= margin * 5 {
                    must_not.push(label.to_string());
                }
            }
            (
                format!("{param}={}", url_encode(&format!("ap{t}"))),
                must,
                must_not,
            )
        })
        .collect()
}

#[test]
fn date_ap_finds_near_values_and_not_far_ones() {
    let docs = doc_date_fixture();
    let mut values: Vec<(&str, Option<(i64, i64)>)> =
        DOC_DATES.iter().map(|d| (*d, Some(range(d)))).collect();
    values.push(("no date", None));
    let mut cases = ap_cases(
        "date",
        &["2021-03-15", "2021-03-15T10:30:00Z", "2019", "2022-06"],
        &values,
    );
    // Make sure the values chosen do discriminate.
    assert!(
        cases.iter().any(|(_, _, not)| not.len() > 1)
            && cases.iter().any(|(_, must, _)| !must.is_empty()),
        "test bug: the ap cases assert nothing: {cases:?}"
    );
    let mut periods = Fx::new();
    let mut items: Vec<(&str, Value)> = PERIODS
        .iter()
        .map(|(l, s, e)| (*l, doc(json!({"context": {"period": period_json(*s, *e)}}))))
        .collect();
    items.push(("no period", doc(json!({}))));
    periods.add(items);
    let period_cases = ap_cases(
        "period",
        &["2021-03-15", "2024-06-01", "1999"],
        &period_values(),
    );
    let mut failures = Vec::new();
    let total = cases.len() + period_cases.len();
    for (q, must, must_not) in cases.drain(..) {
        if let Err(e) = docs.check_bounds("DocumentReference", &q, &must, &must_not) {
            failures.push(e);
        }
    }
    for (q, must, must_not) in period_cases {
        if let Err(e) = periods.check_bounds("DocumentReference", &q, &must, &must_not) {
            failures.push(e);
        }
    }
    report("ap", total, failures);
}

#[test]
fn last_updated_around_timestamps_taken_between_creates() {
    let mut fx = Fx::new();
    let pause = || std::thread::sleep(Duration::from_millis(30));
    let a = fx.add_one("A", pat(json!({})));
    let b = fx.add_one("B", pat(json!({})));
    pause();
    let t1 = format_instant(now_us());
    pause();
    let c = fx.add_one("C", pat(json!({})));
    pause();
    let t2 = format_instant(now_us());
    pause();
    let d = fx.add_one("D", pat(json!({})));
    let updated: Vec<(&str, (i64, i64))> = [("A", &a), ("B", &b), ("C", &c), ("D", &d)]
        .iter()
        .map(|(l, r)| {
            let lu = r["meta"]["lastUpdated"]
                .as_str()
                .unwrap_or_else(|| panic!("no meta.lastUpdated: {r}"));
            (*l, range(lu))
        })
        .collect();
    // The timestamps were taken between the creates, on the same host.
    for (label, r) in &updated {
        let before_t1 = ["A", "B"].contains(label);
        assert!(
            if before_t1 { r.1 < range(&t1).0 } else { r.0 > range(&t1).1 },
            "{label}'s meta.lastUpdated is on the wrong side of {t1} (server and test share the clock): {updated:?}"
        );
    }
    let b_updated = b["meta"]["lastUpdated"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let exactly_b: Vec<&str> = updated
        .iter()
        .filter(|(_, r)| prefix_holds("eq", range(&b_updated), *r))
        .map(|(l, _)| *l)
        .collect();
    let lu = |v: &str| format!("_lastUpdated={}", url_encode(v));
    fx.check_all(
        "Patient",
        "_lastUpdated",
        &[
            case(lu(&format!("gt{t1}")), &["C", "D"]),
            case(lu(&format!("ge{t1}")), &["C", "D"]),
            case(lu(&format!("lt{t1}")), &["A", "B"]),
            case(lu(&format!("le{t1}")), &["A", "B"]),
            case(lu(&format!("sa{t1}")), &["C", "D"]),
            case(lu(&format!("eb{t1}")), &["A", "B"]),
            case(
                format!("{}&{}", lu(&format!("gt{t1}")), lu(&format!("lt{t2}"))),
                &["C"],
            ),
            case(lu(&format!("lt{t1},gt{t2}")), &["A", "B", "D"]),
            case(lu(&format!("eq{b_updated}")), &exactly_b),
            case(lu(&b_updated), &exactly_b),
            case(lu(&format!("gt{}", &t1[..4])), &[]),
            case(lu(&format!("ge{}", &t1[..4])), &["A", "B", "C", "D"]),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// string
// ---------------------------------------------------------------------------------------

fn string_fixture() -> Fx {
    let mut fx = Fx::new();
    fx.add(vec![
        (
            "Chalmérs, Peter James (Zürich)",
            pat(json!({"name": [{"family": "Chalmérs", "given": ["Peter", "James"]}], "address": [{"city": "Zürich"}]})),
        ),
        (
            "Chalmers, Jim (zurich)",
            pat(json!({"name": [{"family": "Chalmers", "given": ["Jim"]}], "address": [{"city": "zurich"}]})),
        ),
        (
            "Windsor, Peter (Amsterdam)",
            pat(json!({"name": [{"family": "Windsor", "given": ["Peter"]}], "address": [{"city": "Amsterdam"}]})),
        ),
        (
            "McChalmers, Ann",
            pat(json!({"name": [{"family": "McChalmers", "given": ["Ann"]}]})),
        ),
        ("no name", pat(json!({"gender": "unknown"}))),
    ]);
    fx
}

const CHALMERS_ACCENT: &str = "Chalmérs, Peter James (Zürich)";
const CHALMERS: &str = "Chalmers, Jim (zurich)";
const WINDSOR: &str = "Windsor, Peter (Amsterdam)";
const MCCHALMERS: &str = "McChalmers, Ann";

#[test]
fn string_default_is_case_and_accent_insensitive_prefix() {
    let fx = string_fixture();
    let e = url_encode;
    fx.check_all(
        "Patient",
        "string prefix",
        &[
            case("family=chalm", &[CHALMERS_ACCENT, CHALMERS]),
            case("family=CHALM", &[CHALMERS_ACCENT, CHALMERS]),
            case(
                format!("family={}", e("chalmé")),
                &[CHALMERS_ACCENT, CHALMERS],
            ),
            case(
                format!("family={}", e("CHALMÉRS")),
                &[CHALMERS_ACCENT, CHALMERS],
            ),
            case("family=halm", &[]),
            case("family=chalmersx", &[]),
            case("name=chalm", &[CHALMERS_ACCENT, CHALMERS]),
            case("name=pet", &[CHALMERS_ACCENT, WINDSOR]),
            case("name=mcc", &[MCCHALMERS]),
            case("given=jam", &[CHALMERS_ACCENT]),
            case("given=j", &[CHALMERS_ACCENT, CHALMERS]),
            case("given=PETER", &[CHALMERS_ACCENT, WINDSOR]),
            case("address-city=zur", &[CHALMERS_ACCENT, CHALMERS]),
            case(
                format!("address-city={}", e("ZÜRICH")),
                &[CHALMERS_ACCENT, CHALMERS],
            ),
            case("address-city=ams", &[WINDSOR]),
        ],
    );
}

#[test]
fn string_exact_contains_and_missing() {
    let fx = string_fixture();
    let e = url_encode;
    let named = [CHALMERS_ACCENT, CHALMERS, WINDSOR, MCCHALMERS];
    fx.check_all(
        "Patient",
        "string :exact, :contains, :missing",
        &[
            case(
                format!("family:exact={}", e("Chalmérs")),
                &[CHALMERS_ACCENT],
            ),
            case("family:exact=Chalmers", &[CHALMERS]),
            case(format!("family:exact={}", e("chalmérs")), &[]),
            case("family:exact=CHALMERS", &[]),
            case("family:exact=Chalm", &[]),
            case(
                format!("address-city:exact={}", e("Zürich")),
                &[CHALMERS_ACCENT],
            ),
            case("address-city:exact=zurich", &[CHALMERS]),
            case("given:exact=Peter", &[CHALMERS_ACCENT, WINDSOR]),
            case("given:exact=peter", &[]),
            case(
                "family:contains=halm",
                &[CHALMERS_ACCENT, CHALMERS, MCCHALMERS],
            ),
            case(
                "family:contains=ALMER",
                &[CHALMERS_ACCENT, CHALMERS, MCCHALMERS],
            ),
            case(
                format!("family:contains={}", e("lmér")),
                &[CHALMERS_ACCENT, CHALMERS, MCCHALMERS],
            ),
            case("name:contains=ete", &[CHALMERS_ACCENT, WINDSOR]),
            case("address-city:contains=RIC", &[CHALMERS_ACCENT, CHALMERS]),
            case("family:contains=xyz", &[]),
            case("family:missing=true", &["no name"]),
            case("family:missing=false", &named),
            case("address-city:missing=true", &[MCCHALMERS, "no name"]),
            case(
                "address-city:missing=false",
                &[CHALMERS_ACCENT, CHALMERS, WINDSOR],
            ),
        ],
    );
}

#[test]
fn comma_is_or_and_repeated_parameter_is_and() {
    let fx = string_fixture();
    fx.check_all(
        "Patient",
        "OR and AND",
        &[
            case("family=windsor,mcch", &[WINDSOR, MCCHALMERS]),
            case("family=windsor,nobody", &[WINDSOR]),
            case("given=peter,ann", &[CHALMERS_ACCENT, WINDSOR, MCCHALMERS]),
            case("name=peter&name=chalm", &[CHALMERS_ACCENT]),
            case("given=peter&family=windsor", &[WINDSOR]),
            case("given=peter&given=james", &[CHALMERS_ACCENT]),
            case("given=jim&given=peter", &[]),
            case(
                "family=chalm,windsor&given=peter",
                &[CHALMERS_ACCENT, WINDSOR],
            ),
            case(
                "family=chalm&address-city=zur,ams",
                &[CHALMERS_ACCENT, CHALMERS],
            ),
            case(
                format!("_id={},{}", fx.id(WINDSOR), fx.id(MCCHALMERS)),
                &[WINDSOR, MCCHALMERS],
            ),
            case(format!("_id={}&family=chalm", fx.id(WINDSOR)), &[]),
        ],
    );
}

/// `%`, `_` and `\\` in values are literal characters, never wildcards; `\\,` is a comma.
#[test]
fn string_special_characters_are_literal() {
    let mut fx = Fx::new();
    fx.add(vec![
        (
            "Under_score",
            pat(json!({"name": [{"family": "Under_score"}]})),
        ),
        (
            "Underxscore",
            pat(json!({"name": [{"family": "Underxscore"}]})),
        ),
        ("Hundred%", pat(json!({"name": [{"family": "Hundred%"}]}))),
        ("Hundreds", pat(json!({"name": [{"family": "Hundreds"}]}))),
        (
            "Back\\slash",
            pat(json!({"name": [{"family": "Back\\slash"}]})),
        ),
        ("Doe, Jr", pat(json!({"name": [{"family": "Doe, Jr"}]}))),
        ("Doe", pat(json!({"name": [{"family": "Doe"}]}))),
    ]);
    let e = url_encode;
    fx.check_all(
        "Patient",
        "literal special characters",
        &[
            case(format!("family={}", e("under_")), &["Under_score"]),
            case(format!("family:contains={}", e("r_s")), &["Under_score"]),
            case(
                format!("family:exact={}", e("Under_score")),
                &["Under_score"],
            ),
            case(format!("family={}", e("hundred%")), &["Hundred%"]),
            case(format!("family:contains={}", e("%")), &["Hundred%"]),
            case(format!("family={}", e("%")), &[]),
            case(format!("family={}", e("_")), &[]),
            case(format!("family:contains={}", e("k\\s")), &["Back\\slash"]),
            case(format!("family={}", e("doe\\, jr")), &["Doe, Jr"]),
            case(format!("family:exact={}", e("Doe\\, Jr")), &["Doe, Jr"]),
            // Unescaped, the comma separates two values: "Doe" or "Jr".
            case(format!("family:exact={}", e("Doe,Jr")), &["Doe"]),
            case(format!("family={}", e("doe")), &["Doe, Jr", "Doe"]),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// uri and composite
// ---------------------------------------------------------------------------------------

#[test]
fn uri_exact_below_and_above() {
    let mut fx = Fx::new();
    let at = |u: &str| {
        doc(json!({"content": [{"attachment": {"contentType": "application/pdf", "url": u}}]}))
    };
    fx.add(vec![
        (
            "docs/2021/a.pdf",
            at("http://files.example.org/docs/2021/a.pdf"),
        ),
        (
            "docs/2022/b.pdf",
            at("http://files.example.org/docs/2022/b.pdf"),
        ),
        ("other/c.pdf", at("http://files.example.org/other/c.pdf")),
        ("docs", at("http://files.example.org/docs")),
        (
            "elsewhere",
            at("http://elsewhere.example.com/docs/2021/a.pdf"),
        ),
    ]);
    let e = url_encode;
    fx.check_all(
        "DocumentReference",
        "uri",
        &[
            case(
                format!("location={}", e("http://files.example.org/docs/2021/a.pdf")),
                &["docs/2021/a.pdf"],
            ),
            case(
                format!("location={}", e("http://files.example.org/docs/2021")),
                &[],
            ),
            case(
                format!("location:below={}", e("http://files.example.org/docs")),
                &["docs/2021/a.pdf", "docs/2022/b.pdf", "docs"],
            ),
            case(
                format!("location:below={}", e("http://files.example.org/docs/2021")),
                &["docs/2021/a.pdf"],
            ),
            case(
                format!(
                    "location:above={}",
                    e("http://files.example.org/docs/2021/a.pdf")
                ),
                &["docs/2021/a.pdf", "docs"],
            ),
            case(
                format!(
                    "location:above={}",
                    e("http://files.example.org/docs/2023/z.pdf")
                ),
                &["docs"],
            ),
            case(
                format!("location:above={}", e("http://files.example.org/x")),
                &[],
            ),
        ],
    );
}

/// `:below` and `:above` follow path segments: `…/docs` is not above `…/docs-archive/…`.
#[test]
fn uri_below_and_above_respect_path_segments() {
    let mut fx = Fx::new();
    let at = |u: &str| {
        doc(json!({"content": [{"attachment": {"contentType": "application/pdf", "url": u}}]}))
    };
    fx.add(vec![
        ("docs/a.pdf", at("http://files.example.org/docs/a.pdf")),
        (
            "docs-archive/d.pdf",
            at("http://files.example.org/docs-archive/d.pdf"),
        ),
        ("doc", at("http://files.example.org/doc")),
    ]);
    let e = url_encode;
    fx.check_all(
        "DocumentReference",
        "uri segments",
        &[
            case(
                format!("location:below={}", e("http://files.example.org/docs")),
                &["docs/a.pdf"],
            ),
            case(
                format!(
                    "location:above={}",
                    e("http://files.example.org/docs/a.pdf")
                ),
                &["docs/a.pdf"],
            ),
        ],
    );
}

#[test]
fn composite_relationship() {
    let mut fx = Fx::new();
    fx.add(vec![("old1", doc(json!({}))), ("old2", doc(json!({})))]);
    let (old1, old2) = (fx.id("old1"), fx.id("old2"));
    let relates = |code: &str, to: &str| {
        doc(
            json!({"relatesTo": [{"code": code, "target": reference(&format!("DocumentReference/{to}"))}]}),
        )
    };
    fx.add(vec![
        ("replaces old1", relates("replaces", &old1)),
        ("appends old1", relates("appends", &old1)),
        ("replaces old2", relates("replaces", &old2)),
    ]);
    let rel = |v: String| format!("relationship={}", url_encode(&v));
    fx.check_all(
        "DocumentReference",
        "composite relationship",
        &[
            case(
                rel(format!("replaces$DocumentReference/{old1}")),
                &["replaces old1"],
            ),
            case(
                rel(format!("appends$DocumentReference/{old1}")),
                &["appends old1"],
            ),
            case(rel(format!("replaces${old2}")), &["replaces old2"]),
            case(rel(format!("transforms$DocumentReference/{old1}")), &[]),
            case(
                rel(format!(
                    "replaces$DocumentReference/{old1},replaces$DocumentReference/{old2}"
                )),
                &["replaces old1", "replaces old2"],
            ),
            case(
                format!("relatesto=DocumentReference/{old1}"),
                &["replaces old1", "appends old1"],
            ),
            case("relation=replaces", &["replaces old1", "replaces old2"]),
            case("relationship:missing=true", &["old1", "old2"]),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// chains and _has
// ---------------------------------------------------------------------------------------

struct ChainData {
    docs: Fx,
    patients: Fx,
    mrn: String,
}

fn chain_fixture() -> ChainData {
    let mut patients = Fx::new();
    let mrn = uid();
    patients.add(vec![
        (
            "Alpha",
            pat(json!({"identifier": [{"system": MRN_SYSTEM, "value": mrn}], "name": [{"family": "Alpha", "given": ["Al"]}]})),
        ),
        (
            "Beta",
            pat(json!({"identifier": [{"system": MRN_SYSTEM, "value": uid()}], "name": [{"family": "Beta", "given": ["Be"]}]})),
        ),
        ("Gamma (no documents)", pat(json!({"name": [{"family": "Gamma"}]}))),
    ]);
    let mut others = Fx::new();
    others.add(vec![
        ("Smith", practitioner_named("Smith", "Anna")),
        ("Jones", practitioner_named("Jones", "Bob")),
        (
            "Org",
            json!({"resourceType": "Organization", "name": "Smith Clinic"}),
        ),
    ]);
    others.add(vec![(
        "Role of Jones",
        json!({"resourceType": "PractitionerRole", "practitioner": reference(&format!("Practitioner/{}", others.id("Jones")))}),
    )]);
    let p = |l: &str| reference(&format!("Patient/{}", patients.id(l)));
    let a = |t: &str, l: &str| reference(&format!("{t}/{}", others.id(l)));
    let mut docs = Fx::new();
    docs.add(vec![
        (
            "Alpha by Smith (progress)",
            doc(json!({"subject": p("Alpha"), "author": [a("Practitioner", "Smith")], "type": loinc_type("11506-3", "Progress note")})),
        ),
        (
            "Beta by Jones (discharge)",
            doc(json!({"subject": p("Beta"), "author": [a("Practitioner", "Jones")], "type": loinc_type("18842-5", "Discharge summary")})),
        ),
        (
            "Alpha by Role of Jones (progress)",
            doc(json!({"subject": p("Alpha"), "author": [a("PractitionerRole", "Role of Jones")], "type": loinc_type("11506-3", "Progress note")})),
        ),
        (
            "Beta by Org (superseded)",
            doc(json!({"status": "superseded", "subject": p("Beta"), "author": [a("Organization", "Org")], "type": loinc_type("18842-5", "Discharge summary")})),
        ),
    ]);
    ChainData {
        docs,
        patients,
        mrn,
    }
}

#[test]
fn chained_parameters() {
    let ChainData { docs, mrn, .. } = chain_fixture();
    let e = url_encode;
    docs.check_all(
        "DocumentReference",
        "chains",
        &[
            case(
                format!("patient.identifier={}", e(&format!("{MRN_SYSTEM}|{mrn}"))),
                &[
                    "Alpha by Smith (progress)",
                    "Alpha by Role of Jones (progress)",
                ],
            ),
            case(
                format!("patient.identifier={mrn}"),
                &[
                    "Alpha by Smith (progress)",
                    "Alpha by Role of Jones (progress)",
                ],
            ),
            case(
                format!("patient.identifier={}", e(&format!("urn:other|{mrn}"))),
                &[],
            ),
            case("author.family=smith", &["Alpha by Smith (progress)"]),
            case("author.given=bob", &["Beta by Jones (discharge)"]),
            case(
                "author:Practitioner.family=jones",
                &["Beta by Jones (discharge)"],
            ),
            case(
                "author:Practitioner.family=smith,jones",
                &["Alpha by Smith (progress)", "Beta by Jones (discharge)"],
            ),
            case("author.family=nobody", &[]),
            case(
                "subject:Patient.name=alpha",
                &[
                    "Alpha by Smith (progress)",
                    "Alpha by Role of Jones (progress)",
                ],
            ),
            case(
                "subject:Patient.name=be",
                &["Beta by Jones (discharge)", "Beta by Org (superseded)"],
            ),
            case(
                "subject.family=ALPHA",
                &[
                    "Alpha by Smith (progress)",
                    "Alpha by Role of Jones (progress)",
                ],
            ),
            case("patient.name=gamma", &[]),
            case(
                "subject:Patient.name=alpha&author.family=smith",
                &["Alpha by Smith (progress)"],
            ),
        ],
    );
}

#[test]
fn has_finds_patients_by_their_documents() {
    let ChainData { patients, .. } = chain_fixture();
    let e = url_encode;
    patients.check_all(
        "Patient",
        "_has",
        &[
            case(
                format!(
                    "_has:DocumentReference:patient:type={}",
                    e("http://loinc.org|11506-3")
                ),
                &["Alpha"],
            ),
            case("_has:DocumentReference:patient:type=18842-5", &["Beta"]),
            case(
                "_has:DocumentReference:patient:type=11506-3,18842-5",
                &["Alpha", "Beta"],
            ),
            case(
                "_has:DocumentReference:subject:status=superseded",
                &["Beta"],
            ),
            case(
                "_has:DocumentReference:patient:status=current",
                &["Alpha", "Beta"],
            ),
            case("_has:DocumentReference:patient:type=00000-0", &[]),
            case(
                "_has:DocumentReference:patient:author.family=smith",
                &["Alpha"],
            ),
            case(
                "_has:DocumentReference:patient:status=current&name=be",
                &["Beta"],
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// _include and _revinclude
// ---------------------------------------------------------------------------------------

struct IncludeData {
    fx: Fx,
}

fn include_fixture() -> IncludeData {
    let mut fx = Fx::new();
    fx.add(vec![
        ("P1", pat(json!({"name": [{"family": "One"}]}))),
        ("P2", pat(json!({"name": [{"family": "Two"}]}))),
        ("P3 (no documents)", pat(json!({}))),
        ("Dr A", practitioner_named("Alder", "Ann")),
        ("Dr B", practitioner_named("Birch", "Ben")),
        (
            "Org",
            json!({"resourceType": "Organization", "name": "Include Clinic"}),
        ),
    ]);
    fx.add(vec![(
        "Role of Dr B",
        json!({"resourceType": "PractitionerRole", "practitioner": reference(&format!("Practitioner/{}", fx.id("Dr B")))}),
    )]);
    let r = |fx: &Fx, t: &str, l: &str| reference(&format!("{t}/{}", fx.id(l)));
    let d1 = doc(
        json!({"subject": r(&fx, "Patient", "P1"), "author": [r(&fx, "Practitioner", "Dr A")]}),
    );
    fx.add(vec![("D1 P1 by Dr A", d1)]);
    let d2 = doc(
        json!({"subject": r(&fx, "Patient", "P1"), "author": [r(&fx, "PractitionerRole", "Role of Dr B")],
        "relatesTo": [{"code": "appends", "target": r(&fx, "DocumentReference", "D1 P1 by Dr A")}]}),
    );
    let d3 = doc(json!({"subject": r(&fx, "Patient", "P2"),
        "author": [r(&fx, "Practitioner", "Dr A"), r(&fx, "Organization", "Org")]}));
    fx.add(vec![
        ("D2 P1 by Role (appends D1)", d2),
        ("D3 P2 by Dr A and Org", d3),
    ]);
    IncludeData { fx }
}

/// Checks a Bundle with includes: its matches, its included resources (as labels), the
/// modes, fullUrls and that nothing appears twice.
fn check_included(
    fx: &Fx,
    rt: &str,
    q: &str,
    matches: &[&str],
    included: &[&str],
) -> Result<(), String> {
    let path = fx.scoped(rt, q);
    let pages = walk(&path)?;
    let mut problems = Vec::new();
    let mut got_matches = BTreeSet::new();
    let mut got_included = BTreeSet::new();
    for page in &pages {
        let mut seen = HashSet::new();
        for e in entries_of(page) {
            let t = e["resource"]["resourceType"].as_str().unwrap_or("?");
            let id = e["resource"]["id"].as_str().unwrap_or("?");
            let full = format!("{}/{t}/{id}", base());
            if e["fullUrl"] != full.as_str() {
                problems.push(format!(
                    "entry {t}/{id} has fullUrl {} (expected {full})",
                    e["fullUrl"]
                ));
            }
            if !seen.insert(full.clone()) {
                problems.push(format!("{} appears twice on one page", fx.label(id)));
            }
            match e["search"]["mode"].as_str() {
                Some("match") => {
                    if t != rt {
                        problems.push(format!("a {t} is marked as a match of a {rt} search"));
                    }
                    got_matches.insert(fx.label(id));
                }
                Some("include") => {
                    got_included.insert(fx.label(id));
                }
                other => problems.push(format!("{} has search.mode {other:?}", fx.label(id))),
            }
        }
    }
    let want_m: BTreeSet<String> = matches.iter().map(|s| s.to_string()).collect();
    let want_i: BTreeSet<String> = included.iter().map(|s| s.to_string()).collect();
    if got_matches != want_m {
        problems.push(format!("matches: expected {want_m:?}, got {got_matches:?}"));
    }
    if got_included != want_i {
        problems.push(format!(
            "included: expected {want_i:?}, got {got_included:?}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "GET {}\n    {}",
            url(&path),
            problems.join("\n    ")
        ))
    }
}

#[test]
fn include_and_revinclude() {
    let IncludeData { fx } = include_fixture();
    let docs = [
        "D1 P1 by Dr A",
        "D2 P1 by Role (appends D1)",
        "D3 P2 by Dr A and Org",
    ];
    let cases: Vec<(&str, &str, Vec<&str>, Vec<&str>)> = vec![
        (
            "DocumentReference",
            "_include=DocumentReference:subject",
            docs.to_vec(),
            vec!["P1", "P2"],
        ),
        (
            "DocumentReference",
            "_include=DocumentReference:patient",
            docs.to_vec(),
            vec!["P1", "P2"],
        ),
        (
            "DocumentReference",
            "_include=DocumentReference:subject:Patient",
            docs.to_vec(),
            vec!["P1", "P2"],
        ),
        (
            "DocumentReference",
            "_include=DocumentReference:author:Practitioner",
            docs.to_vec(),
            vec!["Dr A"],
        ),
        (
            "DocumentReference",
            "_include=DocumentReference:author",
            docs.to_vec(),
            vec!["Dr A", "Role of Dr B", "Org"],
        ),
        (
            "DocumentReference",
            "_include=DocumentReference:author:Practitioner&_include=DocumentReference:subject",
            docs.to_vec(),
            vec!["Dr A", "P1", "P2"],
        ),
        // D1 is a match already: it is not added again.
        (
            "DocumentReference",
            "_include=DocumentReference:relatesto",
            docs.to_vec(),
            vec![],
        ),
        (
            "DocumentReference",
            "_id=nothing-matches&_include=DocumentReference:subject",
            vec![],
            vec![],
        ),
        (
            "Patient",
            "_revinclude=DocumentReference:patient",
            vec!["P1", "P2", "P3 (no documents)"],
            docs.to_vec(),
        ),
        (
            "Patient",
            "name=one&_revinclude=DocumentReference:subject",
            vec!["P1"],
            vec!["D1 P1 by Dr A", "D2 P1 by Role (appends D1)"],
        ),
        (
            "Practitioner",
            "_revinclude=DocumentReference:author",
            vec!["Dr A", "Dr B"],
            vec!["D1 P1 by Dr A", "D3 P2 by Dr A and Org"],
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(rt, q, m, i)| check_included(&fx, rt, q, m, i).err())
        .collect();
    let mut failures = failures;
    // Totals count matches only, never included resources.
    let q = fx.scoped(
        "DocumentReference",
        "_include=DocumentReference:subject&_include=DocumentReference:author&_total=accurate",
    );
    match fetch(&q) {
        Ok(b) if b["total"] == 3 => {}
        Ok(b) => failures.push(format!(
            "GET {q}\n    total should be 3 (matches only), got {}",
            b["total"]
        )),
        Err(e) => failures.push(e),
    }
    report("_include/_revinclude", cases.len() + 1, failures);
}

#[test]
fn include_iterate() {
    let IncludeData { fx } = include_fixture();
    let docs = [
        "D1 P1 by Dr A",
        "D2 P1 by Role (appends D1)",
        "D3 P2 by Dr A and Org",
    ];
    let cases: Vec<(&str, &str, Vec<&str>, Vec<&str>)> = vec![
        (
            "DocumentReference",
            "_include=DocumentReference:author&_include:iterate=PractitionerRole:practitioner",
            docs.to_vec(),
            vec!["Dr A", "Role of Dr B", "Org", "Dr B"],
        ),
        (
            "DocumentReference",
            "_id=DOC2&_include=DocumentReference:author&_include:iterate=PractitionerRole:practitioner",
            vec!["D2 P1 by Role (appends D1)"],
            vec!["Role of Dr B", "Dr B"],
        ),
        (
            "Patient",
            "_revinclude=DocumentReference:patient&_include:iterate=DocumentReference:author",
            vec!["P1", "P2", "P3 (no documents)"],
            [docs.as_slice(), &["Dr A", "Role of Dr B", "Org"]].concat(),
        ),
        (
            "Patient",
            "name=two&_revinclude=DocumentReference:patient&_include:iterate=DocumentReference:author:Practitioner",
            vec!["P2"],
            vec!["D3 P2 by Dr A and Org", "Dr A"],
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(rt, q, m, i)| {
            let q = q.replace("DOC2", &fx.id("D2 P1 by Role (appends D1)"));
            check_included(&fx, rt, &q, m, i).err()
        })
        .collect();
    report("_include:iterate", cases.len(), failures);
}

#[test]
fn includes_belong_to_their_page() {
    let IncludeData { fx } = include_fixture();
    let path = fx.scoped(
        "DocumentReference",
        "_sort=_id&_count=1&_include=DocumentReference:subject",
    );
    let pages = walk(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut problems = Vec::new();
    assert_eq!(pages.len(), 3, "three documents, one per page: {pages:?}");
    for page in &pages {
        let entries = entries_of(page);
        let m: Vec<&Value> = entries.iter().filter(|e| mode_of(e) == "match").collect();
        let i: Vec<&Value> = entries.iter().filter(|e| mode_of(e) == "include").collect();
        let subject = m
            .first()
            .and_then(|e| e["resource"]["subject"]["reference"].as_str())
            .unwrap_or_default()
            .to_string();
        let included: Vec<String> = i
            .iter()
            .map(|e| format!("Patient/{}", e["resource"]["id"].as_str().unwrap_or("?")))
            .collect();
        if m.len() != 1 || included != vec![subject.clone()] {
            problems.push(format!(
                "a page of one document should include exactly its subject {subject}; got {} matches and included {included:?}",
                m.len()
            ));
        }
    }
    report("includes per page", pages.len(), problems);
}

// ---------------------------------------------------------------------------------------
// _sort
// ---------------------------------------------------------------------------------------

fn sort_fixture() -> Fx {
    let mut fx = Fx::new();
    // Created one by one, so _lastUpdated follows this order.
    for (label, family, given, birth, gender) in [
        ("Baker", "Baker", "Zed", "1990-05-01", "male"),
        ("Adams", "Adams", "Yan", "1985-01-01", "female"),
        ("Carter", "Carter", "Xia", "1990-05-01", "female"),
        ("Evans", "Evans", "Wim", "1970-12-31", "other"),
        ("Dunn", "Dunn", "Vic", "2001-07-04", "male"),
    ] {
        fx.add_one(
            label,
            pat(json!({"name": [{"family": family, "given": [given]}], "birthDate": birth, "gender": gender})),
        );
    }
    fx
}

#[test]
fn sort_by_string_date_and_token() {
    let fx = sort_fixture();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        (
            "_sort=family",
            vec!["Adams", "Baker", "Carter", "Dunn", "Evans"],
        ),
        (
            "_sort=-family",
            vec!["Evans", "Dunn", "Carter", "Baker", "Adams"],
        ),
        (
            "_sort=given",
            vec!["Dunn", "Evans", "Carter", "Adams", "Baker"],
        ),
        (
            "_sort=birthdate,family",
            vec!["Evans", "Adams", "Baker", "Carter", "Dunn"],
        ),
        (
            "_sort=birthdate,-family",
            vec!["Evans", "Adams", "Carter", "Baker", "Dunn"],
        ),
        (
            "_sort=-birthdate,family",
            vec!["Dunn", "Baker", "Carter", "Adams", "Evans"],
        ),
        (
            "_sort=gender,-birthdate",
            vec!["Carter", "Adams", "Dunn", "Baker", "Evans"],
        ),
        (
            "_sort=-gender,family",
            vec!["Evans", "Baker", "Dunn", "Adams", "Carter"],
        ),
        (
            "_sort=gender,birthdate,given",
            vec!["Adams", "Carter", "Baker", "Dunn", "Evans"],
        ),
    ];
    let mut failures: Vec<String> = cases
        .iter()
        .filter_map(|(q, want)| fx.check_order("Patient", q, want).err())
        .collect();
    // A single date key with a tie: the tied pair may come in either order.
    for (q, groups) in [
        (
            "_sort=birthdate",
            vec![
                vec!["Evans"],
                vec!["Adams"],
                vec!["Baker", "Carter"],
                vec!["Dunn"],
            ],
        ),
        (
            "_sort=-birthdate",
            vec![
                vec!["Dunn"],
                vec!["Baker", "Carter"],
                vec!["Adams"],
                vec!["Evans"],
            ],
        ),
    ] {
        match fx.found("Patient", q) {
            Err(e) => failures.push(e),
            Ok(got) => {
                let mut at = 0;
                let ok = got.len() == 5
                    && groups.iter().all(|g| {
                        let mut part: Vec<&str> =
                            got[at..at + g.len()].iter().map(String::as_str).collect();
                        part.sort_unstable();
                        at += g.len();
                        let mut want = g.clone();
                        want.sort_unstable();
                        part == want
                    });
                if !ok {
                    failures.push(format!(
                        "GET {}\n    expected the groups {groups:?} in this order, got {got:?}",
                        url(&fx.scoped("Patient", q))
                    ));
                }
            }
        }
    }
    report("_sort", cases.len() + 2, failures);
}

#[test]
fn sort_by_instant_uses_the_instant_not_the_text() {
    let mut fx = Fx::new();
    fx.add(vec![
        ("10:30Z", doc(json!({"date": "2021-03-15T10:30:00Z"}))),
        ("2020", doc(json!({"date": "2020-01-01T00:00:00Z"}))),
        (
            "10:30+01:00 (09:30Z)",
            doc(json!({"date": "2021-03-15T10:30:00+01:00"})),
        ),
        ("2022", doc(json!({"date": "2022-01-01T00:00:00Z"}))),
        (
            "10:00-02:00 (12:00Z)",
            doc(json!({"date": "2021-03-15T10:00:00-02:00"})),
        ),
    ]);
    let up = [
        "2020",
        "10:30+01:00 (09:30Z)",
        "10:30Z",
        "10:00-02:00 (12:00Z)",
        "2022",
    ];
    let down: Vec<&str> = up.iter().rev().copied().collect();
    let failures: Vec<String> = [
        fx.check_order("DocumentReference", "_sort=date", &up),
        fx.check_order("DocumentReference", "_sort=-date", &down),
        fx.check_order("DocumentReference", "_sort=-date&_count=2", &down),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    report("_sort=date", 3, failures);
}

#[test]
fn sort_by_id_and_last_updated() {
    let fx = sort_fixture();
    let created = ["Baker", "Adams", "Carter", "Evans", "Dunn"];
    let mut by_id: Vec<(String, &str)> = created.iter().map(|l| (fx.id(l), *l)).collect();
    by_id.sort();
    let ids_up: Vec<&str> = by_id.iter().map(|(_, l)| *l).collect();
    let ids_down: Vec<&str> = ids_up.iter().rev().copied().collect();
    let newest_first: Vec<&str> = created.iter().rev().copied().collect();
    let failures: Vec<String> = [
        fx.check_order("Patient", "_sort=_id", &ids_up),
        fx.check_order("Patient", "_sort=-_id", &ids_down),
        fx.check_order("Patient", "_sort=_lastUpdated", &created),
        fx.check_order("Patient", "_sort=-_lastUpdated", &newest_first),
        fx.check_order("Patient", "_sort=-_lastUpdated&_count=2", &newest_first),
        fx.check_order("Patient", "_sort=gender,_id", &{
            let mut v: Vec<(&str, String)> = created
                .iter()
                .map(|l| {
                    let g = match *l {
                        "Adams" | "Carter" => "female",
                        "Baker" | "Dunn" => "male",
                        _ => "other",
                    };
                    (g, fx.id(l))
                })
                .collect();
            v.sort();
            v.iter()
                .map(|(_, id)| {
                    fx.ids
                        .iter()
                        .find(|(_, i)| *i == id)
                        .map(|(l, _)| l.as_str())
                        .unwrap_or("?")
                })
                .collect::<Vec<&str>>()
        }),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    report("_sort=_id/_lastUpdated", 6, failures);
}

#[test]
fn sort_ties_are_deterministic_and_paged_exactly_once() {
    let mut fx = Fx::new();
    let items: Vec<(String, Value)> = (0..25)
        .map(|i| (format!("tied {i:02}"), pat(json!({"birthDate": "2000-01-01", "gender": "female", "name": [{"family": "Tie"}]}))))
        .collect();
    fx.add(items.iter().map(|(l, r)| (l.as_str(), r.clone())).collect());
    let mut failures = Vec::new();
    let queries = [
        "_sort=birthdate",
        "_sort=-birthdate",
        "_sort=gender,family",
        "_sort=-family,birthdate",
    ];
    for q in queries {
        let whole = fx.found("Patient", &format!("{q}&_count=100"));
        let again = fx.found("Patient", &format!("{q}&_count=100"));
        let paged = fx.found("Patient", &format!("{q}&_count=4"));
        let paged7 = fx.found("Patient", &format!("{q}&_count=7"));
        match (whole, again, paged, paged7) {
            (Ok(whole), Ok(again), Ok(paged), Ok(paged7)) => {
                let unique: HashSet<&String> = paged.iter().collect();
                if whole.len() != 25 {
                    failures.push(format!("{q}: {} matches instead of 25", whole.len()));
                }
                if whole != again {
                    failures.push(format!("{q}: two identical requests gave different orders:\n    {whole:?}\n    {again:?}"));
                }
                if unique.len() != paged.len() || paged.len() != 25 {
                    failures.push(format!("{q}&_count=4: {} entries over the pages, {} distinct (expected 25 once each): {paged:?}", paged.len(), unique.len()));
                }
                if paged != whole {
                    failures.push(format!("{q}: pages of 4 are not the single page's order:\n    {whole:?}\n    {paged:?}"));
                }
                if paged7 != whole {
                    failures.push(format!("{q}: pages of 7 are not the single page's order:\n    {whole:?}\n    {paged7:?}"));
                }
            }
            (a, b, c, d) => {
                failures.extend([a.err(), b.err(), c.err(), d.err()].into_iter().flatten())
            }
        }
    }
    report("tied sorts", queries.len(), failures);
}

/// The pages before `last`, following `previous` links, then `last`: ids per page, first
/// page first.
fn walk_back(last: &Value) -> Result<Vec<Vec<String>>, String> {
    let mut back = vec![match_ids(last)];
    let mut previous = link_of(last, "previous");
    while let Some(u) = previous {
        if back.len() > 100 {
            return Err("previous links loop".into());
        }
        let page = fetch(&u)?;
        previous = link_of(&page, "previous");
        back.push(match_ids(&page));
    }
    back.reverse();
    Ok(back)
}

/// Resources without a value for a sort key are still returned exactly once, whichever
/// way the pages are walked, and those with values keep their order.
#[test]
fn sort_with_missing_values_pages_every_match_once() {
    let mut fx = Fx::new();
    let data: Vec<(String, Option<String>, Option<&str>)> = (0..12)
        .map(|i| {
            let birth =
                (i % 3 != 0).then(|| format!("19{:02}-0{}-01", 60 + (i * 7) % 30, 1 + i % 9));
            let family = (i % 3 == 2).then_some(["Ash", "Elm", "Oak", "Ash"][i / 3]);
            (format!("p{i:02}"), birth, family)
        })
        .collect();
    let items: Vec<(&str, Value)> = data
        .iter()
        .map(|(l, b, f)| {
            let mut r = pat(json!({"gender": "unknown"}));
            if let Some(b) = b {
                r["birthDate"] = json!(b);
            }
            if let Some(f) = f {
                r["name"] = json!([{"family": f}]);
            }
            (l.as_str(), r)
        })
        .collect();
    fx.add(items);
    let birth_of: HashMap<String, Option<String>> = data
        .iter()
        .map(|(l, b, _)| (l.clone(), b.clone()))
        .collect();
    let family_of: HashMap<String, Option<&str>> =
        data.iter().map(|(l, _, f)| (l.clone(), *f)).collect();
    let mut problems = Vec::new();
    let queries = [
        "_sort=birthdate",
        "_sort=-birthdate",
        "_sort=family,-birthdate",
        "_sort=-family,birthdate",
    ];
    for q in queries {
        let whole = match fx.found("Patient", &format!("{q}&_count=100")) {
            Ok(w) => w,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let distinct: HashSet<&String> = whole.iter().collect();
        if whole.len() != 12 || distinct.len() != 12 {
            problems.push(format!(
                "{q}: {} entries, {} distinct (expected 12): {whole:?}",
                whole.len(),
                distinct.len()
            ));
        }
        // The first key's values, among the resources that have one, are in order.
        let descending = q.starts_with("_sort=-");
        let firsts: Vec<String> = whole
            .iter()
            .filter_map(|l| {
                if q.contains("=family") || q.contains("=-family") {
                    family_of.get(l).copied().flatten().map(str::to_string)
                } else {
                    birth_of.get(l).cloned().flatten()
                }
            })
            .collect();
        let ordered = firsts.windows(2).all(|w| {
            if descending {
                w[0] >= w[1]
            } else {
                w[0] <= w[1]
            }
        });
        if !ordered {
            problems.push(format!(
                "{q}: the values of the first key are not in order: {firsts:?}"
            ));
        }
        let path = fx.scoped("Patient", &format!("{q}&_count=3"));
        match walk(&path) {
            Err(e) => problems.push(e),
            Ok(pages) => {
                let forward: Vec<Vec<String>> = pages.iter().map(match_ids).collect();
                let flat: Vec<String> = forward.iter().flatten().map(|id| fx.label(id)).collect();
                if flat != whole {
                    problems.push(format!(
                        "{q}&_count=3: walking next gives {flat:?}, one page gives {whole:?}"
                    ));
                }
                match pages.last().map(walk_back) {
                    Some(Ok(back)) if back == forward => {}
                    Some(Ok(back)) => problems.push(format!(
                        "{q}&_count=3: walking previous from the last page gives {:?}, walking next {:?}",
                        back.iter().map(|p| fx.labels_of(p)).collect::<Vec<_>>(),
                        forward.iter().map(|p| fx.labels_of(p)).collect::<Vec<_>>()
                    )),
                    Some(Err(e)) => problems.push(e),
                    None => problems.push(format!("{q}: no page")),
                }
            }
        }
    }
    report("sorts over missing values", queries.len() * 3, problems);
}

// ---------------------------------------------------------------------------------------
// _total, _summary, _elements, _count
// ---------------------------------------------------------------------------------------

fn twenty_five_patients() -> Fx {
    let mut fx = Fx::new();
    let items: Vec<(String, Value)> = (0..25)
        .map(|i| {
            (
                format!("p{i:02}"),
                pat(json!({"name": [{"family": "Counted"}], "gender": "male"})),
            )
        })
        .collect();
    fx.add(items.iter().map(|(l, r)| (l.as_str(), r.clone())).collect());
    fx
}

#[track_caller]
fn fetch_ok(path: &str) -> Value {
    fetch(path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn total_modes_and_summary_count() {
    let fx = twenty_five_patients();
    let mut failures = Vec::new();
    let mut expect = |cond: bool, msg: String| {
        if !cond {
            failures.push(msg);
        }
    };

    let q = fx.scoped("Patient", "_total=accurate&_count=5");
    let b = fetch_ok(&q);
    expect(
        b["total"] == 25,
        format!("GET {q}: total should be 25, got {}", b["total"]),
    );
    expect(
        match_ids(&b).len() == 5,
        format!("GET {q}: 5 entries expected, got {}", match_ids(&b).len()),
    );
    expect(
        link_of(&b, "next").is_some(),
        format!("GET {q}: a next link is expected"),
    );
    // The total is that of the whole search on every page.
    if let Some(next) = link_of(&b, "next") {
        let b2 = fetch_ok(&next);
        expect(
            b2["total"] == 25,
            format!("GET {next}: total should still be 25, got {}", b2["total"]),
        );
    }

    let q = fx.scoped("Patient", "_total=estimate&_count=5");
    let b = fetch_ok(&q);
    expect(
        b["total"].is_u64(),
        format!(
            "GET {q}: an estimated total (a non-negative integer) is expected, got {}",
            b["total"]
        ),
    );
    expect(
        match_ids(&b).len() == 5,
        format!("GET {q}: 5 entries expected"),
    );

    let q = fx.scoped("Patient", "_total=none&_count=5");
    let b = fetch_ok(&q);
    expect(
        b.get("total").is_none(),
        format!("GET {q}: no total expected, got {}", b["total"]),
    );
    expect(
        match_ids(&b).len() == 5,
        format!("GET {q}: 5 entries expected"),
    );

    let q = fx.scoped("Patient", "_summary=count");
    let b = fetch_ok(&q);
    expect(
        b["total"] == 25,
        format!("GET {q}: total should be 25, got {}", b["total"]),
    );
    expect(
        entries_of(&b).is_empty(),
        format!("GET {q}: no entries expected, got {}", entries_of(&b).len()),
    );

    let q = fx.scoped("Patient", "_summary=count&family=nobody");
    let b = fetch_ok(&q);
    expect(
        b["total"] == 0,
        format!("GET {q}: total should be 0, got {}", b["total"]),
    );

    let q = fx.scoped("Patient", "_count=0&_total=accurate");
    let b = fetch_ok(&q);
    expect(
        b["total"] == 25,
        format!("GET {q}: total should be 25, got {}", b["total"]),
    );
    expect(
        entries_of(&b).is_empty(),
        format!(
            "GET {q}: _count=0 gives no entries, got {}",
            entries_of(&b).len()
        ),
    );

    let q = fx.scoped("Patient", "_count=0");
    let b = fetch_ok(&q);
    expect(
        entries_of(&b).is_empty(),
        format!(
            "GET {q}: _count=0 gives no entries, got {}",
            entries_of(&b).len()
        ),
    );

    report("_total and _summary=count", 14, failures);
}

#[test]
fn count_default_maximum_and_paging() {
    let fx = twenty_five_patients();
    let q = fx.scoped("Patient", "");
    let b = fetch_ok(&q);
    assert_eq!(
        match_ids(&b).len(),
        20,
        "GET {q}: the default page size is 20"
    );
    assert!(
        link_of(&b, "next").is_some(),
        "GET {q}: 25 matches on pages of 20 need a next link"
    );
    let all = all_match_ids(&q).unwrap_or_else(|e| panic!("{e}"));
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(
        (all.len(), distinct.len()),
        (25, 25),
        "GET {q} and its next pages: every match once"
    );

    let q = fx.scoped("Patient", "_count=5000");
    let b = fetch_ok(&q);
    assert_eq!(match_ids(&b).len(), 25);
    let self_link = link_of(&b, "self").unwrap_or_else(|| panic!("GET {q}: no self link"));
    assert!(
        self_link.contains("_count=1000") && !self_link.contains("_count=5000"),
        "GET {q}: the self link should show the page size actually served (1000): {self_link}"
    );
}

#[test]
fn summary_true_and_elements_subset_entries() {
    let mut fx = Fx::new();
    fx.add(vec![(
        "full",
        pat(json!({
            "name": [{"family": "Summary", "given": ["Sam"]}],
            "gender": "female",
            "birthDate": "1999-09-09",
            "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]},
            "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}}]
        })),
    )]);
    let id = fx.id("full");
    let stored = read("Patient", &id);
    let subsetted = |r: &Value| {
        r["meta"]["tag"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["system"] == SUBSETTED_SYSTEM && t["code"] == "SUBSETTED")
    };
    let only = |q: &str| -> Value {
        let path = fx.scoped("Patient", q);
        let b = fetch_ok(&path);
        let e = entries_of(&b);
        assert_eq!(e.len(), 1, "GET {path}: one entry expected: {b}");
        e[0]["resource"].clone()
    };
    let mut failures = Vec::new();

    let r = only("_summary=true");
    for (cond, msg) in [
        (subsetted(&r), "is not tagged SUBSETTED"),
        (r["id"] == id.as_str(), "lost its id"),
        (r["name"] == stored["name"], "lost name (a summary element)"),
        (r["gender"] == "female", "lost gender (a summary element)"),
        (
            r["birthDate"] == "1999-09-09",
            "lost birthDate (a summary element)",
        ),
        (
            r.get("maritalStatus").is_none(),
            "kept maritalStatus (not a summary element)",
        ),
        (
            r.get("communication").is_none(),
            "kept communication (not a summary element)",
        ),
    ] {
        if !cond {
            failures.push(format!("_summary=true: the entry {msg}: {r}"));
        }
    }

    let r = only("_elements=gender");
    for (cond, msg) in [
        (subsetted(&r), "is not tagged SUBSETTED"),
        (
            r["resourceType"] == "Patient" && r["id"] == id.as_str(),
            "lost resourceType or id",
        ),
        (r["gender"] == "female", "lost gender"),
        (r.get("name").is_none(), "kept name"),
        (r.get("birthDate").is_none(), "kept birthDate"),
        (r.get("maritalStatus").is_none(), "kept maritalStatus"),
    ] {
        if !cond {
            failures.push(format!("_elements=gender: the entry {msg}: {r}"));
        }
    }

    let r = only("_elements=name,birthDate");
    if !(subsetted(&r)
        && r["name"] == stored["name"]
        && r["birthDate"] == "1999-09-09"
        && r.get("gender").is_none())
    {
        failures.push(format!(
            "_elements=name,birthDate: expected name and birthDate only, tagged SUBSETTED: {r}"
        ));
    }

    let r = only("_summary=false");
    if r != stored {
        failures.push(format!(
            "_summary=false: the entry should be the resource as read:\n    {r}\n    {stored}"
        ));
    }
    let r = only("");
    if r != stored {
        failures.push(format!(
            "a plain search: the entry should be the resource as read:\n    {r}\n    {stored}"
        ));
    }
    report("_summary/_elements", 5, failures);
}

// ---------------------------------------------------------------------------------------
// links and paging
// ---------------------------------------------------------------------------------------

#[test]
fn links_are_absolute_and_paging_walks_both_ways() {
    let mut fx = Fx::new();
    let items: Vec<(String, Value)> = (0..7)
        .map(|i| (format!("p{i}"), pat(json!({"gender": "other"}))))
        .collect();
    fx.add(items.iter().map(|(l, r)| (l.as_str(), r.clone())).collect());
    let prefix = format!("{}/", base());
    let first_path = fx.scoped("Patient", "_count=3");
    let whole = fx
        .found("Patient", "_count=100")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(whole.len(), 7, "seven matches: {whole:?}");

    let pages = walk(&first_path).unwrap_or_else(|e| panic!("{e}"));
    let mut problems = Vec::new();
    let sizes: Vec<usize> = pages.iter().map(|p| match_ids(p).len()).collect();
    if sizes != vec![3, 3, 1] {
        problems.push(format!(
            "pages of 3 over 7 matches should hold 3, 3, 1; got {sizes:?}"
        ));
    }
    for (i, page) in pages.iter().enumerate() {
        for relation in ["self", "first"] {
            if link_of(page, relation).is_none() {
                problems.push(format!("page {i} has no {relation} link"));
            }
        }
        if (i > 0) != link_of(page, "previous").is_some() {
            problems.push(format!(
                "page {i}: a previous link is expected exactly on pages after the first: {}",
                page["link"]
            ));
        }
        if (i + 1 < pages.len()) != link_of(page, "next").is_some() {
            problems.push(format!(
                "page {i}: a next link is expected exactly on pages before the last: {}",
                page["link"]
            ));
        }
        for l in page["link"].as_array().into_iter().flatten() {
            let u = l["url"].as_str().unwrap_or_default();
            if !u.starts_with(&prefix) {
                problems.push(format!(
                    "page {i}: link {} {u:?} is not absolute on the configured base {prefix}",
                    l["relation"]
                ));
            }
        }
        for e in entries_of(page) {
            let id = e["resource"]["id"].as_str().unwrap_or("?");
            if e["fullUrl"] != format!("{prefix}Patient/{id}").as_str() {
                problems.push(format!("page {i}: entry {id} has fullUrl {}", e["fullUrl"]));
            }
        }
    }
    let forward: Vec<String> = pages
        .iter()
        .flat_map(|p| fx.labels_of(&match_ids(p)))
        .collect();
    if forward != whole {
        problems.push(format!(
            "walking next gives {forward:?}, the single page {whole:?}"
        ));
    }
    // The self link of the first page gives the first page again; `first` from the last
    // page too.
    if let (Some(first), Some(last)) = (pages.first(), pages.last()) {
        for (what, link) in [
            ("self of page 0", link_of(first, "self")),
            ("first of the last page", link_of(last, "first")),
        ] {
            if let Some(u) = link {
                match fetch(&u) {
                    Ok(b) if match_ids(&b) == match_ids(first) => {}
                    Ok(b) => problems.push(format!(
                        "{what} ({u}) gives {:?}, page 0 is {:?}",
                        fx.labels_of(&match_ids(&b)),
                        fx.labels_of(&match_ids(first))
                    )),
                    Err(e) => problems.push(e),
                }
            }
        }
        let self_link = link_of(first, "self").unwrap_or_default();
        if !self_link.contains("_tag=") || !self_link.contains("_count=3") {
            problems.push(format!(
                "the self link should carry the search's parameters: {self_link}"
            ));
        }
        // Back from the last page with `previous`.
        let mut back = vec![match_ids(last)];
        let mut previous = link_of(last, "previous");
        while let Some(u) = previous {
            if back.len() > 10 {
                problems.push("previous links loop".into());
                break;
            }
            match fetch(&u) {
                Ok(b) => {
                    previous = link_of(&b, "previous");
                    back.push(match_ids(&b));
                }
                Err(e) => {
                    problems.push(e);
                    break;
                }
            }
        }
        back.reverse();
        let forward_pages: Vec<Vec<String>> = pages.iter().map(match_ids).collect();
        if back != forward_pages {
            problems.push(format!(
                "walking previous from the last page gives the pages {:?}; walking next gave {:?}",
                back.iter().map(|p| fx.labels_of(p)).collect::<Vec<_>>(),
                forward_pages
                    .iter()
                    .map(|p| fx.labels_of(p))
                    .collect::<Vec<_>>()
            ));
        }
    }
    report("links", 10, problems);
}

/// 10,000 matches walked with `_count=1000` (sorted by `_id`) and `_count=700` (default
/// order) while another thread keeps adding matching resources: each of the 10,000 appears
/// exactly once and in order, and nothing appears twice.
#[test]
fn paging_ten_thousand_while_inserting() {
    const N: usize = 10_000;
    let tag = uid();
    let started = Instant::now();
    let resources: Vec<Value> = (0..N)
        .map(|i| {
            tagged(
                &pat(json!({"gender": if i % 2 == 0 { "female" } else { "male" }})),
                &tag,
            )
        })
        .collect();
    let ids = create_all(&resources);
    let original: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(original.len(), N, "10,000 distinct ids were created");
    eprintln!(
        "search tests: 10,000 patients created in {:?}",
        started.elapsed()
    );

    let scoped = |q: &str| format!("Patient?{}&{q}", tag_param(&tag));
    let b = fetch_ok(&scoped("_total=accurate&_count=0"));
    assert_eq!(b["total"], N, "the total before any insert");
    let b = fetch_ok(&scoped("_count=5000"));
    assert_eq!(
        match_ids(&b).len(),
        1000,
        "_count=5000 is lowered to 1000 entries"
    );
    // The order of the default sort before anything is added.
    let baseline = all_match_ids(&scoped("_count=1000")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        baseline.len(),
        N,
        "a quiet walk over pages of 1000 finds every match"
    );

    let stop = AtomicBool::new(false);
    let inserted = AtomicUsize::new(0);
    let (by_id, by_default) = std::thread::scope(|s| {
        let inserter = s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let batch: Vec<Value> = (0..5)
                    .map(|_| tagged(&pat(json!({"gender": "other"})), &tag))
                    .collect();
                for r in &batch {
                    create(r);
                }
                inserted.fetch_add(batch.len(), Ordering::SeqCst);
            }
        });
        let walk_id = s.spawn(|| all_match_ids(&scoped("_sort=_id&_count=1000")));
        let walk_default = s.spawn(|| all_match_ids(&scoped("_count=700")));
        let by_id = walk_id.join().expect("the _id walk did not panic");
        let by_default = walk_default.join().expect("the default walk did not panic");
        stop.store(true, Ordering::SeqCst);
        inserter.join().expect("the inserter did not panic");
        (by_id, by_default)
    });
    let inserted = inserted.load(Ordering::SeqCst);
    eprintln!(
        "search tests: {inserted} patients inserted during the walks; whole test {:?}",
        started.elapsed()
    );
    assert!(
        inserted > 0,
        "the walks were meant to run while resources were added"
    );
    let mut problems = Vec::new();
    for (what, walked) in [
        ("_sort=_id&_count=1000", &by_id),
        ("_count=700", &by_default),
    ] {
        let walked = match walked {
            Ok(w) => w,
            Err(e) => {
                problems.push(e.clone());
                continue;
            }
        };
        let mut seen = HashSet::new();
        let dups: Vec<&String> = walked.iter().filter(|id| !seen.insert(*id)).collect();
        if !dups.is_empty() {
            problems.push(format!(
                "{what}: {} ids appear more than once, e.g. {:?}",
                dups.len(),
                &dups[..dups.len().min(5)]
            ));
        }
        let missing = original.iter().filter(|id| !seen.contains(id)).count();
        if missing > 0 {
            problems.push(format!(
                "{what}: {missing} of the original 10,000 were never returned"
            ));
        }
        let originals_in_walk: Vec<&String> =
            walked.iter().filter(|id| original.contains(*id)).collect();
        if what.starts_with("_sort=_id") {
            if let Some(w) = walked.windows(2).position(|w| w[0] >= w[1]) {
                problems.push(format!(
                    "{what}: the ids are not ascending at position {w}: {} then {}",
                    walked[w],
                    walked[w + 1]
                ));
            }
        } else if originals_in_walk.len() == N
            && originals_in_walk
                .iter()
                .zip(&baseline)
                .any(|(a, b)| *a != b)
        {
            let at = originals_in_walk
                .iter()
                .zip(&baseline)
                .position(|(a, b)| *a != b)
                .unwrap_or(0);
            problems.push(format!("{what}: the original matches come in another order than in the quiet walk (first difference at {at})"));
        }
    }
    // Quiet again: walking `previous` back from the last page gives the same pages.
    match walk(&scoped("_sort=_id&_count=1000")) {
        Err(e) => problems.push(e),
        Ok(pages) => {
            let forward: Vec<Vec<String>> = pages.iter().map(match_ids).collect();
            let total: usize = forward.iter().map(Vec::len).sum();
            if total != N + inserted {
                problems.push(format!(
                    "a quiet walk after the inserts finds {total} matches, expected {}",
                    N + inserted
                ));
            }
            match pages.last().map(walk_back) {
                Some(Ok(back)) if back == forward => {}
                Some(Ok(back)) => problems.push(format!(
                    "walking previous from the last page gives pages of {:?} entries, walking next {:?} (or their contents differ)",
                    back.iter().map(Vec::len).collect::<Vec<_>>(),
                    forward.iter().map(Vec::len).collect::<Vec<_>>()
                )),
                Some(Err(e)) => problems.push(e),
                None => problems.push("no page".into()),
            }
        }
    }
    report("paging 10,000 while inserting", 3, problems);
}

// ---------------------------------------------------------------------------------------
// POST _search
// ---------------------------------------------------------------------------------------

#[test]
fn post_search_with_a_form_body_equals_get() {
    let fx = string_fixture();
    for q in [
        "family=chalm",
        "given=peter&_sort=-family",
        "name=chalm,windsor&_count=2",
    ] {
        let form = format!("{}&{q}", tag_param(&fx.tag));
        let get_pages = walk(&format!("Patient?{form}")).unwrap_or_else(|e| panic!("{e}"));
        let resp = post("Patient/_search")
            .content_type("application/x-www-form-urlencoded")
            .bytes(form.clone())
            .send();
        resp.assert_status(200);
        let b = resp.resource("Bundle");
        assert_eq!(b["type"], "searchset", "POST _search answers a searchset");
        assert_eq!(
            fx.labels_of(&match_ids(&b)),
            fx.labels_of(&match_ids(&get_pages[0])),
            "POST Patient/_search with body {form} should give the entries of GET Patient?{form}"
        );
        // Its links page like the GET's.
        if let Some(next) = link_of(&b, "next") {
            assert!(
                next.starts_with(&format!("{}/", base())),
                "next link {next} is absolute"
            );
            let rest = all_match_ids(&next).unwrap_or_else(|e| panic!("{e}"));
            let get_rest: Vec<String> = get_pages[1..].iter().flat_map(match_ids).collect();
            assert_eq!(rest, get_rest, "the next pages of POST {form}");
        }
    }
    // Parameters in the URL and the body together.
    let resp = post(&format!("Patient/_search?{}", tag_param(&fx.tag)))
        .content_type("application/x-www-form-urlencoded; charset=utf-8")
        .bytes("family=windsor")
        .send();
    resp.assert_status(200);
    assert_eq!(
        fx.labels_of(&match_ids(&resp.resource("Bundle"))),
        vec![WINDSOR.to_string()],
        "POST _search with _tag in the URL and family in the body"
    );
}

#[test]
fn post_search_without_a_form_body_is_415() {
    for (ct, body) in [
        ("application/json", r#"{"family": "x"}"#),
        ("application/fhir+json", r#"{"resourceType": "Parameters"}"#),
        ("text/plain", "family=x"),
    ] {
        let resp = post("Patient/_search").content_type(ct).bytes(body).send();
        resp.assert_outcome(415);
    }
}

// ---------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_parameter_is_400_unless_lenient() {
    let fx = string_fixture();
    let path = fx.scoped("Patient", "family=windsor&frobnicate=1");
    let resp = get(&path).send();
    let oo = resp.assert_outcome(400);
    assert_outcome_mentions(&resp, &oo, "frobnicate");

    let resp = get(&path).prefer("handling=lenient").send();
    resp.assert_status(200);
    let b = resp.resource("Bundle");
    assert_eq!(
        fx.labels_of(&match_ids(&b)),
        vec![WINDSOR.to_string()],
        "GET {path} with handling=lenient ignores the unknown parameter: {b}"
    );
    let self_link = link_of(&b, "self").unwrap_or_else(|| resp.fail("no self link"));
    assert!(
        !self_link.contains("frobnicate") && self_link.contains("family=windsor"),
        "the self link leaves the ignored parameter out and keeps the others: {self_link}"
    );
    // Strict handling asked for explicitly: 400.
    let resp = get(&path).prefer("handling=strict").send();
    assert_outcome_mentions(&resp, &resp.assert_outcome(400), "frobnicate");
    // An unknown parameter is an error on POST _search too.
    let resp = post("Patient/_search")
        .content_type("application/x-www-form-urlencoded")
        .bytes("frobnicate=1")
        .send();
    assert_outcome_mentions(&resp, &resp.assert_outcome(400), "frobnicate");
}

#[test]
fn malformed_values_are_400_naming_the_parameter() {
    for (path, name) in [
        ("DocumentReference?date=notadate", "date"),
        ("DocumentReference?date=2021-13-01", "date"),
        ("DocumentReference?date=xx2021", "date"),
        ("Patient?birthdate=ge", "birthdate"),
        ("Patient?_lastUpdated=yesterday", "_lastUpdated"),
        ("Patient?_count=-1", "_count"),
        ("Patient?_count=ten", "_count"),
        ("Patient?_sort=nonexistent", "nonexistent"),
        ("Patient?_total=sometimes", "_total"),
        ("Patient?_summary=maybe", "_summary"),
        ("Patient?family:fuzzy=x", "family"),
        ("Patient?gender:missing=perhaps", "gender"),
        ("Patient?_include=Patient:nonexistent", "_include"),
        ("DocumentReference?relationship=replaces", "relationship"),
    ] {
        let resp = get(path).send();
        let oo = resp.assert_outcome(400);
        assert_outcome_mentions(&resp, &oo, name);
    }
}

/// The `_cursor` value of a link.
fn cursor_of(link: &str) -> String {
    link.split(['?', '&'])
        .find_map(|p| p.strip_prefix("_cursor="))
        .unwrap_or_else(|| panic!("the link has no _cursor parameter: {link}"))
        .to_string()
}

/// Is a 400 response an OperationOutcome?
fn is_outcome(resp: &Response) -> bool {
    resp.media_type() == FHIR_JSON
        && serde_json::from_slice::<Value>(&resp.body)
            .is_ok_and(|v| v["resourceType"] == "OperationOutcome")
}

/// A cursor is opaque to clients: one that is not exactly what the server handed out
/// (garbage, cut, extended, any single character changed, or taken from another search)
/// is refused with 400, never served as a page nor failing with a 5xx.
#[test]
fn tampered_or_foreign_cursor_is_400() {
    let mut fx = Fx::new();
    let items: Vec<(String, Value)> = (0..12)
        .map(|i| (format!("p{i:02}"), pat(json!({"name": [{"family": format!("Cursor{i:02}")}], "birthDate": format!("19{:02}-01-01", 50 + i)}))))
        .collect();
    fx.add(items.iter().map(|(l, r)| (l.as_str(), r.clone())).collect());
    let mut problems = Vec::new();
    let mut checked = 0;
    let mut foreign = None;
    for q in [
        "_count=5",
        "_count=5&_sort=-birthdate",
        "_count=5&_sort=-_lastUpdated,family",
    ] {
        let first = fetch_ok(&fx.scoped("Patient", q));
        let next = link_of(&first, "next").unwrap_or_else(|| panic!("GET {q}: a next link"));
        let cursor = cursor_of(&next);
        if let Err(e) = fetch(&next) {
            problems.push(format!("the untouched next link fails: {e}"));
        }
        let with_cursor = |c: &str| {
            next.replace(
                &format!("_cursor={cursor}"),
                &format!("_cursor={}", url_encode(c)),
            )
        };
        let mut variants = vec![
            ("garbage".to_string(), "not-a-cursor".to_string()),
            (
                "truncated".to_string(),
                cursor[..cursor.len() / 2].to_string(),
            ),
            ("extended".to_string(), format!("{cursor}AAAA")),
        ];
        if let Some(f) = foreign.replace(cursor.clone()) {
            variants.push(("taken from another search".to_string(), f));
        }
        // Every single-character change.
        for (i, ch) in cursor.char_indices() {
            let other = if ch == 'A' { 'B' } else { 'A' };
            let mut changed = cursor.clone();
            changed.replace_range(i..i + ch.len_utf8(), &other.to_string());
            variants.push((format!("character {i} changed ({ch} -> {other})"), changed));
        }
        let outcomes = par_map(&variants, 6, |(what, c)| {
            let u = with_cursor(c);
            let resp = get(&u).send();
            match resp.status {
                400 if is_outcome(&resp) => None,
                400 => Some(format!("{q}, {what}: the 400 is not an OperationOutcome")),
                status => Some(format!(
                    "{q}, {what}: GET {u}\n    expected 400, got {status}: {}",
                    snippet(&resp.body, 200)
                )),
            }
        });
        checked += variants.len();
        let failed: Vec<String> = outcomes.into_iter().flatten().collect();
        if !failed.is_empty() {
            // Every 5xx, and a few examples of the rest.
            let (errors, others): (Vec<&String>, Vec<&String>) =
                failed.iter().partition(|f| f.contains("got 5"));
            let shown: Vec<&String> = errors
                .iter()
                .chain(others.iter().take(3))
                .copied()
                .collect();
            problems.push(format!(
                "{} of {} altered cursors of `{q}` (cursor {cursor}) were not refused with 400 ({} answered 5xx):\n  {}",
                failed.len(),
                variants.len(),
                errors.len(),
                shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  ")
            ));
        }
    }
    report("cursors", checked, problems);
}

#[test]
fn unknown_or_unhosted_type_is_404() {
    for path in ["Foo?name=x", "Observation?code=1234-5", "Foo"] {
        get(path).send().assert_outcome(404);
    }
    post("Foo/_search")
        .content_type("application/x-www-form-urlencoded")
        .bytes("name=x")
        .send()
        .assert_outcome(404);
}

// ---------------------------------------------------------------------------------------
// deletes and updates
// ---------------------------------------------------------------------------------------

#[test]
fn deleted_resources_are_found_by_nothing() {
    let mut fx = Fx::new();
    let mrn = uid();
    fx.add(vec![
        (
            "deleted patient",
            pat(json!({"identifier": [{"system": MRN_SYSTEM, "value": mrn}], "name": [{"family": "Gone"}], "birthDate": "1950-01-01"})),
        ),
        ("kept patient", pat(json!({"name": [{"family": "Kept"}], "birthDate": "1950-01-01"}))),
    ]);
    let (gone, kept) = (fx.id("deleted patient"), fx.id("kept patient"));
    fx.add(vec![
        // A patient with documents about them cannot be deleted (409), so the
        // deleted one is only named as an author.
        ("doc of deleted", doc(json!({"author": [reference(&format!("Patient/{gone}"))]}))),
        ("deleted doc of kept", doc(json!({"subject": reference(&format!("Patient/{kept}")), "description": "to be deleted"}))),
        ("doc of kept", doc(json!({"subject": reference(&format!("Patient/{kept}")), "status": "superseded"}))),
    ]);
    // Found before the deletes.
    fx.check(
        "Patient",
        &format!("_id={gone}"),
        &["deleted patient".to_string()],
    )
    .unwrap_or_else(|e| panic!("before the delete: {e}"));
    delete(&format!("Patient/{gone}")).send().assert_status(204);
    delete(&format!(
        "DocumentReference/{}",
        fx.id("deleted doc of kept")
    ))
    .send()
    .assert_status(204);
    let e = url_encode;
    let mut problems = Vec::new();
    for (rt, q, want) in [
        ("Patient", String::new(), vec!["kept patient"]),
        ("Patient", format!("_id={gone}"), vec![]),
        ("Patient", "family=gone".to_string(), vec![]),
        (
            "Patient",
            format!("identifier={}", e(&format!("{MRN_SYSTEM}|{mrn}"))),
            vec![],
        ),
        (
            "Patient",
            "birthdate=1950-01-01".to_string(),
            vec!["kept patient"],
        ),
        (
            "Patient",
            "_has:DocumentReference:patient:status=current".to_string(),
            vec![],
        ),
        (
            "Patient",
            "_has:DocumentReference:patient:status=superseded".to_string(),
            vec!["kept patient"],
        ),
        (
            "DocumentReference",
            String::new(),
            vec!["doc of deleted", "doc of kept"],
        ),
        (
            "DocumentReference",
            "author:Patient.family=gone".to_string(),
            vec![],
        ),
        ("DocumentReference", "description=to".to_string(), vec![]),
        (
            "DocumentReference",
            format!("subject=Patient/{kept}"),
            vec!["doc of kept"],
        ),
    ] {
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        if let Err(err) = fx.check(rt, &q, &want) {
            problems.push(err);
        }
    }
    for (q, matches, included) in [(
        "_include=DocumentReference:subject&_include=DocumentReference:author",
        vec!["doc of deleted", "doc of kept"],
        vec!["kept patient"],
    )] {
        if let Err(err) = check_included(&fx, "DocumentReference", q, &matches, &included) {
            problems.push(err);
        }
    }
    if let Err(err) = check_included(
        &fx,
        "Patient",
        "_revinclude=DocumentReference:patient",
        &["kept patient"],
        &["doc of kept"],
    ) {
        problems.push(err);
    }
    report("deleted resources", 13, problems);
}

/// A resource deleted then written again (a new version) is found again, by its new values.
#[test]
fn revived_resource_is_found_again() {
    let mut fx = Fx::new();
    let created = fx.add_one("patient", pat(json!({"name": [{"family": "Phoenix"}]})));
    let id = id_of(&created);
    delete(&format!("Patient/{id}")).send().assert_status(204);
    fx.check("Patient", "family=phoenix", &[])
        .unwrap_or_else(|e| panic!("after the delete: {e}"));
    let mut revived = tagged(
        &pat(json!({"name": [{"family": "Phoenix", "given": ["Risen"]}]})),
        &fx.tag,
    );
    revived["id"] = json!(id);
    let resp = put(&format!("Patient/{id}")).json(&revived).send();
    if resp.status != 200 && resp.status != 201 {
        resp.fail("a PUT after a delete revives the resource");
    }
    fx.check_all(
        "Patient",
        "after the revival",
        &[
            case("family=phoenix", &["patient"]),
            case("given=risen", &["patient"]),
            case(format!("_id={id}"), &["patient"]),
        ],
    );
}

#[test]
fn updated_resource_is_found_by_its_new_values_only() {
    let mut fx = Fx::new();
    let created = fx.add_one(
        "patient",
        pat(json!({"name": [{"family": "Oldname", "given": ["Olga"]}], "gender": "male", "birthDate": "1960-06-06",
            "identifier": [{"system": MRN_SYSTEM, "value": "old-mrn"}]})),
    );
    let id = id_of(&created);
    let mut updated = created.clone();
    updated["name"] = json!([{"family": "Newname", "given": ["Nina"]}]);
    updated["gender"] = json!("female");
    updated["birthDate"] = json!("1970-07-07");
    updated["identifier"] = json!([{"system": MRN_SYSTEM, "value": "new-mrn"}]);
    put(&format!("Patient/{id}"))
        .json(&updated)
        .send()
        .assert_status(200);
    let p = ["patient"];
    fx.check_all(
        "Patient",
        "after an update",
        &[
            case("family=oldname", &[]),
            case("given=olga", &[]),
            case("gender=male", &[]),
            case("birthdate=1960-06-06", &[]),
            case(
                format!(
                    "identifier={}",
                    url_encode(&format!("{MRN_SYSTEM}|old-mrn"))
                ),
                &[],
            ),
            case("family=newname", &p),
            case("given=nina", &p),
            case("gender=female", &p),
            case("birthdate=1970-07-07", &p),
            case(
                format!(
                    "identifier={}",
                    url_encode(&format!("{MRN_SYSTEM}|new-mrn"))
                ),
                &p,
            ),
            case("family:missing=false", &p),
        ],
    );
}

// ---------------------------------------------------------------------------------------
// XML and the CapabilityStatement
// ---------------------------------------------------------------------------------------

#[test]
fn xml_searchset() {
    let fx = string_fixture();
    for (path, accept) in [
        (fx.scoped("Patient", "family=chalm&_format=xml"), None),
        (fx.scoped("Patient", "family=chalm"), Some(FHIR_XML)),
    ] {
        let mut req = get(&path);
        if let Some(a) = accept {
            req = req.accept(a);
        }
        let resp = req.send();
        resp.assert_status(200);
        if resp.media_type() != FHIR_XML {
            resp.fail("expected an application/fhir+xml body");
        }
        let xml = resp.text();
        for needle in [
            "<Bundle xmlns=\"http://hl7.org/fhir\"",
            "<type value=\"searchset\"/>",
            "<relation value=\"self\"/>",
            "<mode value=\"match\"/>",
        ] {
            if !xml.contains(needle) {
                resp.fail(&format!("the XML Bundle should contain {needle}"));
            }
        }
        let entries = xml.matches("<entry>").count();
        if entries != 2 {
            resp.fail(&format!("expected 2 entries, found {entries}"));
        }
        for label in [CHALMERS_ACCENT, CHALMERS] {
            let id = fx.id(label);
            if !xml.contains(&format!("<id value=\"{id}\"/>"))
                || !xml.contains(&format!("<fullUrl value=\"{}/Patient/{id}\"/>", base()))
            {
                resp.fail(&format!(
                    "the XML Bundle should hold {label} ({id}) with its fullUrl"
                ));
            }
        }
        if !xml.contains("Chalmérs") {
            resp.fail("the accented family name should survive in the XML");
        }
    }
}

#[test]
fn capability_statement_lists_search_parameters() {
    let resp = get("metadata").send();
    resp.assert_status(200);
    let cs = resp.resource("CapabilityStatement");
    let resources = cs["rest"][0]["resource"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| resp.fail("no rest[0].resource"));
    let mut problems = Vec::new();
    for t in HOSTED_TYPES.iter().filter(|t| **t != "Binary") {
        let Some(r) = resources.iter().find(|r| r["type"] == *t) else {
            problems.push(format!("{t} is not listed"));
            continue;
        };
        let params: Vec<Value> = r["searchParam"].as_array().cloned().unwrap_or_default();
        if params.is_empty() {
            problems.push(format!("{t} lists no searchParam"));
            continue;
        }
        for p in &params {
            if p["name"].as_str().is_none_or(str::is_empty)
                || p["type"].as_str().is_none_or(str::is_empty)
            {
                problems.push(format!("{t}: a searchParam without name or type: {p}"));
            }
        }
        let type_of = |name: &str| {
            params
                .iter()
                .find(|p| p["name"] == name)
                .map(|p| p["type"].as_str().unwrap_or_default().to_string())
        };
        let mut expected = vec![
            ("_id", "token"),
            ("_lastUpdated", "date"),
            ("_tag", "token"),
        ];
        if *t == "DocumentReference" {
            expected.extend([
                ("patient", "reference"),
                ("date", "date"),
                ("type", "token"),
                ("subject", "reference"),
                ("relationship", "composite"),
                ("location", "uri"),
            ]);
        }
        if *t == "Patient" {
            expected.extend([
                ("family", "string"),
                ("birthdate", "date"),
                ("identifier", "token"),
            ]);
        }
        if *t == "Consent" {
            expected.extend([("patient", "reference"), ("period", "date")]);
        }
        for (name, kind) in expected {
            match type_of(name) {
                Some(k) if k == kind => {}
                Some(k) => problems.push(format!(
                    "{t}: searchParam {name} has type {k}, expected {kind}"
                )),
                None => problems.push(format!("{t}: searchParam {name} is missing")),
            }
        }
        let interactions: Vec<&str> = r["interaction"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["code"].as_str())
            .collect();
        if !interactions.contains(&"search-type") {
            problems.push(format!(
                "{t}: the search-type interaction is not listed: {interactions:?}"
            ));
        }
    }
    report(
        "CapabilityStatement searchParam",
        HOSTED_TYPES.len() - 1,
        problems,
    );
}
