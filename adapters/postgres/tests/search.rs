//! Search SQL against a real private PostgreSQL cluster, with index rows built by hand so
//! the expected sets are known independently of extraction.

mod common;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::store;
use fhir_profiles::search::date::parse_range;
use fhir_profiles::search::query::{
    ChainTarget, Criterion, DateMatch, Include, Prefix, ReferenceMatch, SearchRequest, SortField,
    SortKey, StringMode, SystemMatch, TokenMatch, TotalMode, Visibility,
};
use fhir_profiles::search::{
    param_key, DateIndex, IndexRows, ParamType, ReferenceIndex, StringIndex, TokenIndex,
};
use fhirledger_postgres::SearchPage;

/// A resource type name of its own per test, so tests do not see each other's rows.
fn fresh_type(stem: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{stem}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A search request with what its included resources are limited to (the
/// server builds that from the caller's access and hands it beside the request).
#[derive(Debug, Clone)]
struct Req {
    request: SearchRequest,
    include_access: Option<BTreeMap<String, Vec<Criterion>>>,
}

impl std::ops::Deref for Req {
    type Target = SearchRequest;
    fn deref(&self) -> &SearchRequest {
        &self.request
    }
}

impl std::ops::DerefMut for Req {
    fn deref_mut(&mut self) -> &mut SearchRequest {
        &mut self.request
    }
}

fn request(rt: &str, criteria: Vec<Criterion>) -> Req {
    let mut request = SearchRequest::new(rt);
    request.criteria = criteria;
    request.count = 1000;
    Req {
        request,
        include_access: None,
    }
}

/// Runs `req` on the test store.
fn search(req: &Req) -> Result<SearchPage, fhirledger_postgres::StoreError> {
    let visibility = Visibility {
        criteria: Vec::new(),
        includes: req.include_access.clone(),
    };
    store().search(&req.request, &visibility)
}

fn create(rt: &str, id: &str, index: IndexRows) {
    store()
        .transaction(|tx| {
            tx.create(rt, id, &index, |v, _| {
                format!(r#"{{"resourceType":"{rt}","id":"{id}","meta":{{"versionId":"{v}"}}}}"#)
            })
        })
        .expect("created");
}

fn ids(page: &SearchPage) -> Vec<String> {
    page.matches.iter().map(|f| f.id.clone()).collect()
}

fn set(ids: Vec<String>) -> HashSet<String> {
    ids.into_iter().collect()
}

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
        .single()
        .expect("valid date")
}

fn token(key: i32, system: Option<&str>, code: &str) -> TokenIndex {
    TokenIndex {
        key,
        system: system.map(str::to_string),
        code: Some(code.to_string()),
        text: None,
    }
}

#[test]
fn tokens_strings_and_references_match_as_specified() {
    let rt = fresh_type("Doc");
    let (kind, name, subject) = (
        param_key(&rt, "type"),
        param_key(&rt, "name"),
        param_key(&rt, "subject"),
    );
    for i in 0..30 {
        let system = if i % 3 == 0 {
            None
        } else {
            Some("http://loinc.org")
        };
        let index = IndexRows {
            tokens: vec![token(kind, system, &format!("c{}", i % 5))],
            strings: vec![StringIndex {
                key: name,
                normalized: format!("name{i}"),
                exact: format!("Name{i}"),
            }],
            references: vec![ReferenceIndex {
                key: subject,
                target_type: Some(if i % 2 == 0 { "Patient" } else { "Group" }.into()),
                target_id: Some(format!("p{}", i % 4)),
                url: None,
            }],
            ..IndexRows::default()
        };
        create(&rt, &format!("d{i}"), index);
    }
    let expect = |f: &dyn Fn(usize) -> bool| -> HashSet<String> {
        (0..30).filter(|i| f(*i)).map(|i| format!("d{i}")).collect()
    };
    let run =
        |criteria: Vec<Criterion>| set(ids(&search(&request(&rt, criteria)).expect("search")));
    let tok = |system: SystemMatch, code: Option<&str>| TokenMatch {
        system,
        code: code.map(str::to_string),
    };

    let any_c1 = Criterion::Token {
        key: kind,
        negated: false,
        values: vec![tok(SystemMatch::Any, Some("c1"))],
    };
    assert_eq!(run(vec![any_c1]), expect(&|i| i % 5 == 1));
    let loinc_c1 = Criterion::Token {
        key: kind,
        negated: false,
        values: vec![tok(SystemMatch::Is("http://loinc.org".into()), Some("c1"))],
    };
    assert_eq!(run(vec![loinc_c1]), expect(&|i| i % 5 == 1 && i % 3 != 0));
    let bare_c1 = Criterion::Token {
        key: kind,
        negated: false,
        values: vec![tok(SystemMatch::NoSystem, Some("c1"))],
    };
    assert_eq!(run(vec![bare_c1]), expect(&|i| i % 5 == 1 && i % 3 == 0));
    let any_loinc = Criterion::Token {
        key: kind,
        negated: false,
        values: vec![tok(SystemMatch::Is("http://loinc.org".into()), None)],
    };
    assert_eq!(run(vec![any_loinc]), expect(&|i| i % 3 != 0));
    let not_c1_or_c2 = Criterion::Token {
        key: kind,
        negated: true,
        values: vec![
            tok(SystemMatch::Any, Some("c1")),
            tok(SystemMatch::Any, Some("c2")),
        ],
    };
    assert_eq!(
        run(vec![not_c1_or_c2]),
        expect(&|i| i % 5 != 1 && i % 5 != 2)
    );

    let prefix = Criterion::String {
        key: name,
        mode: StringMode::Prefix,
        values: vec!["name1".into()],
    };
    assert_eq!(
        run(vec![prefix]),
        expect(&|i| i.to_string().starts_with('1'))
    );
    let exact = Criterion::String {
        key: name,
        mode: StringMode::Exact,
        values: vec!["Name12".into()],
    };
    assert_eq!(run(vec![exact]), expect(&|i| i == 12));
    let exact_wrong_case = Criterion::String {
        key: name,
        mode: StringMode::Exact,
        values: vec!["name12".into()],
    };
    assert!(run(vec![exact_wrong_case]).is_empty());
    let contains = Criterion::String {
        key: name,
        mode: StringMode::Contains,
        values: vec!["e2".into()],
    };
    assert_eq!(
        run(vec![contains]),
        expect(&|i| i.to_string().starts_with('2'))
    );
    let like_chars = Criterion::String {
        key: name,
        mode: StringMode::Prefix,
        values: vec!["name%".into()],
    };
    assert!(
        run(vec![like_chars]).is_empty(),
        "LIKE wildcards in values match literally"
    );

    let patient_p0 = Criterion::Reference {
        key: subject,
        values: vec![ReferenceMatch::Local {
            resource_type: Some("Patient".into()),
            id: "p0".into(),
        }],
    };
    assert_eq!(
        run(vec![patient_p0.clone()]),
        expect(&|i| i % 2 == 0 && i % 4 == 0)
    );
    let any_p1 = Criterion::Reference {
        key: subject,
        values: vec![ReferenceMatch::Local {
            resource_type: None,
            id: "p1".into(),
        }],
    };
    assert_eq!(run(vec![any_p1]), expect(&|i| i % 4 == 1));
    // AND of two criteria, OR inside one.
    let c0_or_c4 = Criterion::Token {
        key: kind,
        negated: false,
        values: vec![
            tok(SystemMatch::Any, Some("c0")),
            tok(SystemMatch::Any, Some("c4")),
        ],
    };
    assert_eq!(
        run(vec![patient_p0, c0_or_c4]),
        expect(&|i| i % 4 == 0 && (i % 5 == 0 || i % 5 == 4))
    );
    let missing = Criterion::Missing {
        key: param_key(&rt, "other"),
        kind: ParamType::Token,
        missing: true,
    };
    assert_eq!(run(vec![missing]).len(), 30);
    let present = Criterion::Missing {
        key: kind,
        kind: ParamType::Token,
        missing: false,
    };
    assert_eq!(run(vec![present]).len(), 30);
}

/// The R4 prefix semantics from query.rs, evaluated in Rust.
fn prefix_holds(
    prefix: Prefix,
    p: (DateTime<Utc>, DateTime<Utc>),
    r: (DateTime<Utc>, DateTime<Utc>),
) -> bool {
    let eq = r.0 >= p.0 && r.1 <= p.1;
    match prefix {
        Prefix::Eq => eq,
        Prefix::Ne => !eq,
        Prefix::Gt => r.1 > p.1,
        Prefix::Lt => r.0 < p.0,
        Prefix::Ge => r.1 > p.1 || eq,
        Prefix::Le => r.0 < p.0 || eq,
        Prefix::Sa => r.0 > p.1,
        Prefix::Eb => r.1 < p.0,
        Prefix::Ap => unreachable!(),
    }
}

#[test]
fn date_prefixes_follow_range_semantics_at_every_precision() {
    let rt = fresh_type("Dated");
    let key = param_key(&rt, "date");
    // Days, whole months and open-ended periods around early 2020.
    let mut ranges = Vec::new();
    for d in 0..40i64 {
        let low = at(2019, 12, 20) + Duration::days(d);
        let high = match d % 4 {
            0 => low + Duration::days(1) - Duration::microseconds(1),
            1 => low + Duration::days(20),
            2 => fhir_profiles::search::DateRange::max_instant(),
            _ => low + Duration::hours(3),
        };
        ranges.push((low, high));
        create(
            &rt,
            &format!("r{d}"),
            IndexRows {
                dates: vec![DateIndex { key, low, high }],
                ..IndexRows::default()
            },
        );
    }
    for value in [
        "2020",
        "2020-01",
        "2020-01-05",
        "2020-01-05T10:00",
        "2020-01-05T10:00:00Z",
        "2020-01-05T10:00:00.5+01:00",
    ] {
        let range = parse_range(value).expect("valid");
        for prefix in [
            Prefix::Eq,
            Prefix::Ne,
            Prefix::Gt,
            Prefix::Lt,
            Prefix::Ge,
            Prefix::Le,
            Prefix::Sa,
            Prefix::Eb,
        ] {
            let criterion = Criterion::Date {
                key,
                values: vec![DateMatch { prefix, range }],
            };
            let found = set(ids(&search(&request(&rt, vec![criterion])).expect("search")));
            let expected: HashSet<String> = ranges
                .iter()
                .enumerate()
                .filter(|(_, r)| prefix_holds(prefix, (range.low, range.high), **r))
                .map(|(i, _)| format!("r{i}"))
                .collect();
            assert_eq!(found, expected, "{prefix:?}{value}");
        }
    }
}

#[test]
fn paging_by_cursor_returns_every_match_once_in_order_while_others_insert() {
    let rt = fresh_type("Paged");
    let key = param_key(&rt, "date");
    for i in 0..120 {
        // Many ties on the sort key, some without a value at all.
        let dates = if i % 7 == 0 {
            Vec::new()
        } else {
            let day = at(2020, 1, 1) + Duration::days(i % 10);
            vec![DateIndex {
                key,
                low: day,
                high: day,
            }]
        };
        create(
            &rt,
            &format!("p{i:03}"),
            IndexRows {
                dates,
                ..IndexRows::default()
            },
        );
    }
    let mut req = request(&rt, Vec::new());
    req.count = 7;
    req.sort = vec![SortKey {
        field: SortField::Param {
            key,
            kind: ParamType::Date,
        },
        descending: true,
    }];
    let mut walked = Vec::new();
    let mut pages = Vec::new();
    loop {
        let page = search(&req).expect("page");
        walked.extend(ids(&page));
        pages.push((req.cursor.clone(), ids(&page)));
        // Another client inserts matching resources meanwhile (after the walk's start).
        create(&rt, &format!("z{}", walked.len()), IndexRows::default());
        match page.next {
            Some(next) => req.cursor = Some(next),
            None => break,
        }
    }
    let original: Vec<String> = walked
        .iter()
        .filter(|id| id.starts_with('p'))
        .cloned()
        .collect();
    assert_eq!(original.len(), 120, "every original match exactly once");
    assert_eq!(set(original.clone()).len(), 120);
    assert_eq!(set(walked.clone()).len(), walked.len(), "no duplicates");
    // Descending by date, missing dates last, ties in creation order.
    let key_of = |id: &str| -> (i64, usize) {
        let i: i64 = id[1..].parse().expect("number");
        (if i % 7 == 0 { i64::MIN } else { i % 10 }, i as usize)
    };
    let mut sorted = original.clone();
    sorted.sort_by(|a, b| {
        key_of(b)
            .0
            .cmp(&key_of(a).0)
            .then(key_of(a).1.cmp(&key_of(b).1))
    });
    assert_eq!(original, sorted);
    // Walking `previous` from the last page gives back the same pages.
    let last_page = search(&req).expect("last page");
    let mut back = last_page.previous.clone();
    let mut index = pages.len() - 1;
    while let Some(prev) = back {
        index -= 1;
        req.cursor = Some(prev);
        let page = search(&req).expect("previous page");
        let expected: Vec<String> = pages[index]
            .1
            .iter()
            .filter(|id| id.starts_with('p'))
            .cloned()
            .collect();
        let got: Vec<String> = ids(&page)
            .into_iter()
            .filter(|id| id.starts_with('p'))
            .collect();
        assert_eq!(got, expected, "page {index} read backwards");
        back = page.previous;
    }
    assert_eq!(index, 0, "previous links lead back to the first page");
    req.cursor = Some("garbage".into());
    assert!(search(&req).is_err());
}

#[test]
fn totals_chains_has_and_includes() {
    let patients = fresh_type("Pat");
    let docs = fresh_type("Doc");
    let (ident, subject, kind) = (
        param_key(&patients, "identifier"),
        param_key(&docs, "subject"),
        param_key(&docs, "type"),
    );
    for p in 0..5 {
        create(
            &patients,
            &format!("pat{p}"),
            IndexRows {
                tokens: vec![token(ident, Some("urn:mrn"), &format!("mrn{p}"))],
                ..IndexRows::default()
            },
        );
    }
    for d in 0..20 {
        create(
            &docs,
            &format!("doc{d}"),
            IndexRows {
                tokens: vec![token(kind, None, if d % 2 == 0 { "even" } else { "odd" })],
                references: vec![ReferenceIndex {
                    key: subject,
                    target_type: Some(patients.clone()),
                    target_id: Some(format!("pat{}", d % 5)),
                    url: None,
                }],
                ..IndexRows::default()
            },
        );
    }
    // Chain: documents of the patient with identifier mrn3.
    let chain = Criterion::Chain {
        key: subject,
        targets: vec![ChainTarget {
            resource_type: patients.clone(),
            criterion: Box::new(Criterion::Token {
                key: ident,
                negated: false,
                values: vec![TokenMatch {
                    system: SystemMatch::Is("urn:mrn".into()),
                    code: Some("mrn3".into()),
                }],
            }),
        }],
    };
    let found = set(ids(&search(&request(&docs, vec![chain])).expect("chain")));
    assert_eq!(
        found,
        set(vec![
            "doc3".into(),
            "doc8".into(),
            "doc13".into(),
            "doc18".into()
        ])
    );
    // _has: patients with an odd document… all of pat1, pat3 have only odd; every patient has some.
    let has = |code: &str| Criterion::Has {
        source_type: docs.clone(),
        key: subject,
        criterion: Box::new(Criterion::Token {
            key: kind,
            negated: false,
            values: vec![TokenMatch {
                system: SystemMatch::Any,
                code: Some(code.into()),
            }],
        }),
    };
    assert_eq!(
        ids(&search(&request(&patients, vec![has("odd")])).expect("has")).len(),
        5
    );
    assert!(ids(&search(&request(&patients, vec![has("none")])).expect("has")).is_empty());

    // Totals and a small page.
    let mut req = request(&docs, Vec::new());
    req.count = 3;
    req.total = Some(TotalMode::Accurate);
    let page = search(&req).expect("page");
    assert_eq!((page.matches.len(), page.total), (3, Some(20)));
    req.total = Some(TotalMode::Estimate);
    assert!(search(&req).expect("estimate").total.is_some());

    // _include the patients of a page; _revinclude documents of patients.
    req.total = None;
    req.includes = vec![Include {
        source_type: docs.clone(),
        keys: vec![subject],
        target_type: None,
        iterate: false,
    }];
    let page = search(&req).expect("include");
    let included: HashSet<String> = page.included.iter().map(|f| f.id.clone()).collect();
    assert_eq!(
        included,
        set(vec!["pat0".into(), "pat1".into(), "pat2".into()])
    );
    let mut req = request(
        &patients,
        vec![Criterion::Id {
            ids: vec!["pat4".into()],
        }],
    );
    req.revincludes = vec![Include {
        source_type: docs.clone(),
        keys: vec![subject],
        target_type: None,
        iterate: false,
    }];
    let page = search(&req).expect("revinclude");
    assert_eq!(ids(&page), vec!["pat4".to_string()]);
    let rev: HashSet<String> = page.included.iter().map(|f| f.id.clone()).collect();
    assert_eq!(
        rev,
        set(vec![
            "doc4".into(),
            "doc9".into(),
            "doc14".into(),
            "doc19".into()
        ])
    );

    // A deleted document is found by nothing; an update replaces its rows.
    store()
        .transaction(|tx| tx.delete(&docs, "doc4", None))
        .expect("deleted");
    let page = search(&req).expect("revinclude after delete");
    assert!(!page.included.iter().any(|f| f.id == "doc4"));
    store()
        .transaction(|tx| {
            tx.update(&docs, "doc9", None, &IndexRows::default(), |v, _| {
                format!(r#"{{"resourceType":"x","meta":{{"versionId":"{v}"}}}}"#)
            })
        })
        .expect("updated");
    let page = search(&req).expect("revinclude after update");
    let rev: HashSet<String> = page.included.iter().map(|f| f.id.clone()).collect();
    assert_eq!(rev, set(vec!["doc14".into(), "doc19".into()]));
}

/// A token criterion on `key` matching `code` in any system.
fn code_is(key: i32, code: &str) -> Criterion {
    Criterion::Token {
        key,
        negated: false,
        values: vec![TokenMatch {
            system: SystemMatch::Any,
            code: Some(code.into()),
        }],
    }
}

/// A reference criterion on `key` matching `resource_type/id`.
fn refers_to(key: i32, resource_type: &str, id: &str) -> Criterion {
    Criterion::Reference {
        key,
        values: vec![ReferenceMatch::Local {
            resource_type: Some(resource_type.into()),
            id: id.into(),
        }],
    }
}

fn any_of(alternatives: Vec<Vec<Criterion>>) -> Criterion {
    Criterion::AnyOf { alternatives }
}

fn reference(key: i32, resource_type: &str, id: &str) -> ReferenceIndex {
    ReferenceIndex {
        key,
        target_type: Some(resource_type.into()),
        target_id: Some(id.into()),
        url: None,
    }
}

/// Organizations `org0`, `org1`; patients `pat0…pat3` of `org{p % 2}`; documents
/// `doc0…doc39` with category `a`/`b`/`c` by `i % 3`, type `x` when `i % 4 == 0` (else
/// `y`), subject `pat{i % 4}`, author `org{i % 2}` and a date with ties.
struct Fixture {
    orgs: String,
    pats: String,
    docs: String,
    org_ident: i32,
    pat_org: i32,
    category: i32,
    kind: i32,
    subject: i32,
    author: i32,
    date: i32,
}

impl Fixture {
    const DOCS: usize = 40;

    fn new() -> Fixture {
        let (orgs, pats, docs) = (fresh_type("Org"), fresh_type("Pat"), fresh_type("Doc"));
        let f = Fixture {
            org_ident: param_key(&orgs, "identifier"),
            pat_org: param_key(&pats, "organization"),
            category: param_key(&docs, "category"),
            kind: param_key(&docs, "type"),
            subject: param_key(&docs, "subject"),
            author: param_key(&docs, "author"),
            date: param_key(&docs, "date"),
            orgs,
            pats,
            docs,
        };
        for o in 0..2 {
            let tokens = vec![token(f.org_ident, Some("urn:org"), &format!("o{o}"))];
            create(
                &f.orgs,
                &format!("org{o}"),
                IndexRows {
                    tokens,
                    ..IndexRows::default()
                },
            );
        }
        for p in 0..4 {
            let references = vec![reference(f.pat_org, &f.orgs, &format!("org{}", p % 2))];
            create(
                &f.pats,
                &format!("pat{p}"),
                IndexRows {
                    references,
                    ..IndexRows::default()
                },
            );
        }
        for i in 0..Self::DOCS {
            let day = at(2020, 1, 1) + Duration::days((i as i64 * 7) % 5);
            let index = IndexRows {
                tokens: vec![
                    token(f.category, None, ["a", "b", "c"][i % 3]),
                    token(f.kind, None, if i % 4 == 0 { "x" } else { "y" }),
                ],
                references: vec![
                    reference(f.subject, &f.pats, &format!("pat{}", i % 4)),
                    reference(f.author, &f.orgs, &format!("org{}", i % 2)),
                ],
                dates: vec![DateIndex {
                    key: f.date,
                    low: day,
                    high: day,
                }],
                ..IndexRows::default()
            };
            create(&f.docs, &format!("doc{i}"), index);
        }
        f
    }

    /// The documents whose number satisfies `f`.
    fn docs_where(&self, f: impl Fn(usize) -> bool) -> HashSet<String> {
        (0..Self::DOCS)
            .filter(|i| f(*i))
            .map(|i| format!("doc{i}"))
            .collect()
    }

    fn search_docs(&self, criteria: Vec<Criterion>) -> HashSet<String> {
        set(ids(&search(&request(&self.docs, criteria)).expect("search")))
    }

    /// Patients of the organization `org`, as a chain criterion on documents.
    fn subject_of_org(&self, org: &str) -> Criterion {
        Criterion::Chain {
            key: self.subject,
            targets: vec![ChainTarget {
                resource_type: self.pats.clone(),
                criterion: Box::new(refers_to(self.pat_org, &self.orgs, org)),
            }],
        }
    }
}

fn included_ids(page: &SearchPage) -> HashSet<String> {
    page.included.iter().map(|f| f.id.clone()).collect()
}

#[test]
fn none_of_leaves_out_what_any_alternative_names() {
    let f = Fixture::new();
    let (cat, kind) = (f.category, f.kind);
    let none_of = |alternatives| Criterion::NoneOf { alternatives };

    assert_eq!(
        f.search_docs(vec![none_of(Vec::new())]),
        f.docs_where(|_| true),
        "nothing named, nothing left out"
    );
    assert_eq!(
        f.search_docs(vec![none_of(vec![Vec::new()])]),
        f.docs_where(|_| false),
        "an empty alternative names everything"
    );
    assert_eq!(
        f.search_docs(vec![none_of(vec![
            vec![code_is(cat, "a")],
            vec![code_is(kind, "x")]
        ])]),
        f.docs_where(|i| i % 3 != 0 && i % 4 != 0)
    );
    // An alternative is an AND: only documents meeting all of it are left out.
    assert_eq!(
        f.search_docs(vec![none_of(vec![vec![
            code_is(cat, "b"),
            code_is(kind, "x")
        ]])]),
        f.docs_where(|i| !(i % 3 == 1 && i % 4 == 0))
    );
    // Beside an allowance and a driving criterion, as a Consent deny would sit beside
    // the scopes' confinement: patient 1's documents, but not those of category a, nor
    // those the organization-1 chain names with type x.
    let pat1 = refers_to(f.subject, &f.pats, "pat1");
    let allowed = any_of(vec![vec![f.subject_of_org("org1")]]);
    let denied = none_of(vec![
        vec![code_is(cat, "a")],
        vec![f.subject_of_org("org1"), code_is(kind, "x")],
    ]);
    assert_eq!(
        f.search_docs(vec![pat1, allowed, denied]),
        f.docs_where(|i| i % 4 == 1 && i % 3 != 0)
    );
}

#[test]
fn any_of_holds_when_one_alternative_holds_whole() {
    let f = Fixture::new();
    let (cat, kind) = (f.category, f.kind);

    let one = any_of(vec![vec![code_is(cat, "a")]]);
    assert_eq!(f.search_docs(vec![one]), f.docs_where(|i| i % 3 == 0));
    let several = any_of(vec![vec![code_is(cat, "a")], vec![code_is(kind, "x")]]);
    assert_eq!(
        f.search_docs(vec![several.clone()]),
        f.docs_where(|i| i % 3 == 0 || i % 4 == 0)
    );
    let anded = any_of(vec![
        vec![code_is(cat, "b"), code_is(kind, "x")],
        vec![code_is(cat, "c")],
    ]);
    assert_eq!(
        f.search_docs(vec![anded]),
        f.docs_where(|i| (i % 3 == 1 && i % 4 == 0) || i % 3 == 2)
    );

    // With an ordinary criterion, which drives the search.
    let pat1 = refers_to(f.subject, &f.pats, "pat1");
    assert_eq!(
        f.search_docs(vec![pat1.clone(), several.clone()]),
        f.docs_where(|i| i % 4 == 1 && i % 3 == 0)
    );
    // Two restrictions ANDed, one of them negated inside.
    let not_b = Criterion::Token {
        key: cat,
        negated: true,
        values: vec![TokenMatch {
            system: SystemMatch::Any,
            code: Some("b".into()),
        }],
    };
    assert_eq!(
        f.search_docs(vec![several.clone(), any_of(vec![vec![not_b]])]),
        f.docs_where(|i| i % 3 == 0 || (i % 4 == 0 && i % 3 != 1))
    );

    // Chains inside alternatives (a doctor's organization), chains two levels deep, and
    // alternatives inside a chain's target.
    let of_org1 = any_of(vec![
        vec![f.subject_of_org("org1")],
        vec![code_is(cat, "a")],
    ]);
    assert_eq!(
        f.search_docs(vec![of_org1]),
        f.docs_where(|i| i % 2 == 1 || i % 3 == 0)
    );
    let deep = Criterion::Chain {
        key: f.subject,
        targets: vec![ChainTarget {
            resource_type: f.pats.clone(),
            criterion: Box::new(Criterion::Chain {
                key: f.pat_org,
                targets: vec![ChainTarget {
                    resource_type: f.orgs.clone(),
                    criterion: Box::new(code_is(f.org_ident, "o0")),
                }],
            }),
        }],
    };
    assert_eq!(
        f.search_docs(vec![any_of(vec![vec![deep, code_is(kind, "y")]])]),
        f.docs_where(|i| i % 2 == 0 && i % 4 != 0)
    );
    let inside_chain = Criterion::Chain {
        key: f.subject,
        targets: vec![ChainTarget {
            resource_type: f.pats.clone(),
            criterion: Box::new(any_of(vec![
                vec![Criterion::Id {
                    ids: vec!["pat2".into()],
                }],
                vec![refers_to(f.pat_org, &f.orgs, "org1")],
            ])),
        }],
    };
    assert_eq!(
        f.search_docs(vec![inside_chain]),
        f.docs_where(|i| i % 4 != 0)
    );

    // Alternatives nested in alternatives, `_id` and `_lastUpdated` inside (which read
    // the resource row), and `_has` with alternatives inside.
    let nested = any_of(vec![vec![
        any_of(vec![vec![code_is(cat, "a")], vec![code_is(cat, "b")]]),
        code_is(kind, "x"),
    ]]);
    assert_eq!(
        f.search_docs(vec![nested]),
        f.docs_where(|i| i % 3 != 2 && i % 4 == 0)
    );
    let by_id = any_of(vec![
        vec![Criterion::Id {
            ids: vec!["doc1".into(), "doc2".into()],
        }],
        vec![code_is(cat, "a")],
    ]);
    assert_eq!(
        f.search_docs(vec![pat1.clone(), by_id]),
        f.docs_where(|i| i == 1 || (i % 4 == 1 && i % 3 == 0))
    );
    let recent = any_of(vec![vec![Criterion::LastUpdated {
        values: vec![DateMatch {
            prefix: Prefix::Gt,
            range: parse_range("2000").expect("valid"),
        }],
    }]]);
    assert_eq!(f.search_docs(vec![recent]).len(), Fixture::DOCS);
    let has = Criterion::Has {
        source_type: f.docs.clone(),
        key: f.subject,
        criterion: Box::new(any_of(vec![vec![code_is(cat, "a"), code_is(kind, "x")]])),
    };
    let patients = set(ids(&search(&request(&f.pats, vec![has])).expect("_has")));
    assert_eq!(patients, set(vec!["pat0".into()]));

    // No alternatives: nothing, even beside a driver; an empty alternative: everything.
    assert!(f.search_docs(vec![any_of(Vec::new())]).is_empty());
    assert!(f
        .search_docs(vec![pat1.clone(), any_of(Vec::new())])
        .is_empty());
    assert_eq!(
        f.search_docs(vec![any_of(vec![Vec::new()])]).len(),
        Fixture::DOCS
    );
    assert_eq!(
        f.search_docs(vec![any_of(vec![vec![code_is(cat, "zzz")], Vec::new()])]),
        f.docs_where(|_| true)
    );
    let mut none = request(&f.docs, vec![any_of(Vec::new())]);
    none.total = Some(TotalMode::Accurate);
    assert_eq!(search(&none).expect("total").total, Some(0));
}

#[test]
fn any_of_pages_sorted_and_counts_only_what_it_lets_through() {
    let f = Fixture::new();
    let visible = any_of(vec![
        vec![code_is(f.category, "a")],
        vec![f.subject_of_org("org1"), code_is(f.kind, "y")],
    ]);
    let expected = f.docs_where(|i| i % 3 == 0 || i % 2 == 1);
    let sorted = |mut req: Req| {
        req.sort = vec![
            SortKey {
                field: SortField::Param {
                    key: f.date,
                    kind: ParamType::Date,
                },
                descending: true,
            },
            SortKey {
                field: SortField::Id,
                descending: false,
            },
        ];
        req
    };
    // Without a driver, and with one (all documents of type y or x: every one).
    let every_kind = Criterion::Token {
        key: f.kind,
        negated: false,
        values: vec![
            TokenMatch {
                system: SystemMatch::Any,
                code: Some("x".into()),
            },
            TokenMatch {
                system: SystemMatch::Any,
                code: Some("y".into()),
            },
        ],
    };
    for criteria in [vec![visible.clone()], vec![every_kind, visible.clone()]] {
        let whole = search(&sorted(request(&f.docs, criteria.clone()))).expect("one page");
        assert_eq!(set(ids(&whole)), expected);

        let mut req = sorted(request(&f.docs, criteria));
        req.count = 4;
        req.total = Some(TotalMode::Accurate);
        let mut walked = Vec::new();
        let mut pages = 0;
        loop {
            let page = search(&req).expect("page");
            assert_eq!(
                page.total,
                Some(expected.len() as u64),
                "total of visible only"
            );
            walked.extend(ids(&page));
            pages += 1;
            match page.next {
                Some(next) => req.cursor = Some(next),
                None => break,
            }
        }
        assert!(pages > 1);
        assert_eq!(walked, ids(&whole), "every visible match once, in order");

        // A cursor of these restrictions is refused under others.
        let mut first = req.clone();
        first.cursor = None;
        let cursor = search(&first).expect("first").next;
        assert!(cursor.is_some());
        let mut other = first.clone();
        other.cursor = cursor.clone();
        assert!(search(&other).is_ok(), "same restrictions");
        other.criteria.pop();
        other
            .criteria
            .push(any_of(vec![vec![code_is(f.category, "b")]]));
        assert!(search(&other).is_err(), "other criteria");
        let mut other = first.clone();
        other.cursor = cursor;
        other.include_access = Some(BTreeMap::new());
        assert!(search(&other).is_err(), "other include restrictions");
    }
    let mut estimate = request(&f.docs, vec![visible]);
    estimate.total = Some(TotalMode::Estimate);
    assert!(search(&estimate).expect("estimate").total.is_some());
    let explained = store()
        .explain_search(&estimate)
        .expect("explain with alternatives");
    assert!(explained.contains(" OR "), "{explained}");
}

#[test]
fn includes_return_only_what_include_access_lets_through() {
    let f = Fixture::new();
    let access = |entries: Vec<(&str, Vec<Criterion>)>| {
        Some(
            entries
                .into_iter()
                .map(|(t, c)| (t.to_string(), c))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    let include = |source: &str, keys: Vec<i32>, target: Option<&str>, iterate: bool| Include {
        source_type: source.to_string(),
        keys,
        target_type: target.map(str::to_string),
        iterate,
    };

    // Documents 0…7 include their subjects (pat0…pat3) and authors (org0, org1).
    let mut req = request(
        &f.docs,
        vec![Criterion::Id {
            ids: (0..8).map(|i| format!("doc{i}")).collect(),
        }],
    );
    req.includes = vec![include(&f.docs, vec![f.subject, f.author], None, false)];
    let run = |req: &Req| {
        let page = search(req).expect("search");
        assert_eq!(
            page.matches.len(),
            8,
            "matches are not limited by include_access"
        );
        included_ids(&page)
    };
    let all_pats_and_orgs = set(vec![
        "pat0".into(),
        "pat1".into(),
        "pat2".into(),
        "pat3".into(),
        "org0".into(),
        "org1".into(),
    ]);
    assert_eq!(run(&req), all_pats_and_orgs, "unrestricted");
    req.include_access = access(vec![(&f.pats, Vec::new()), (&f.orgs, Vec::new())]);
    assert_eq!(run(&req), all_pats_and_orgs, "both types, all of each");
    req.include_access = access(vec![(&f.pats, Vec::new())]);
    assert_eq!(
        run(&req),
        set(vec![
            "pat0".into(),
            "pat1".into(),
            "pat2".into(),
            "pat3".into()
        ]),
        "organizations are not a key"
    );
    req.include_access = access(vec![
        (&f.pats, vec![refers_to(f.pat_org, &f.orgs, "org0")]),
        (
            &f.orgs,
            vec![any_of(vec![
                vec![code_is(f.org_ident, "o1")],
                vec![code_is(f.org_ident, "none")],
            ])],
        ),
    ]);
    assert_eq!(
        run(&req),
        set(vec!["pat0".into(), "pat2".into(), "org1".into()]),
        "per-type criteria"
    );
    req.include_access = access(Vec::new());
    assert!(run(&req).is_empty(), "no type may be included");
    req.include_access = access(vec![(&f.orgs, vec![any_of(Vec::new())])]);
    assert!(run(&req).is_empty(), "no alternative holds");
    // A named target type that is not a key.
    req.includes = vec![include(&f.docs, vec![f.subject], Some(&f.pats), false)];
    req.include_access = access(vec![(&f.orgs, Vec::new())]);
    assert!(run(&req).is_empty());

    // Reverse: the documents of pat1 (doc1, doc5, …), limited to category a.
    let mut req = request(
        &f.pats,
        vec![Criterion::Id {
            ids: vec!["pat1".into()],
        }],
    );
    req.revincludes = vec![include(&f.docs, vec![f.subject], None, false)];
    let rev = |req: &Req| included_ids(&search(req).expect("revinclude"));
    assert_eq!(rev(&req), f.docs_where(|i| i % 4 == 1));
    req.include_access = access(vec![(
        &f.docs,
        vec![any_of(vec![vec![code_is(f.category, "a")]])],
    )]);
    assert_eq!(rev(&req), f.docs_where(|i| i % 4 == 1 && i % 3 == 0));
    req.include_access = access(vec![(&f.pats, Vec::new())]);
    assert!(rev(&req).is_empty(), "documents are not a key");

    // :iterate never passes through a hidden resource: doc0 → pat0 → org0.
    let mut req = request(
        &f.docs,
        vec![Criterion::Id {
            ids: vec!["doc0".into()],
        }],
    );
    req.includes = vec![
        include(&f.docs, vec![f.subject], None, false),
        include(&f.pats, vec![f.pat_org], None, true),
    ];
    let through = |req: &Req| included_ids(&search(req).expect("iterate"));
    assert_eq!(through(&req), set(vec!["pat0".into(), "org0".into()]));
    req.include_access = access(vec![(&f.pats, Vec::new()), (&f.orgs, Vec::new())]);
    assert_eq!(through(&req), set(vec!["pat0".into(), "org0".into()]));
    req.include_access = access(vec![(&f.orgs, Vec::new())]);
    assert!(
        through(&req).is_empty(),
        "the patient is hidden, so is its path"
    );
    req.include_access = access(vec![
        (
            &f.pats,
            vec![Criterion::Id {
                ids: vec!["pat1".into()],
            }],
        ),
        (&f.orgs, Vec::new()),
    ]);
    assert!(through(&req).is_empty(), "hidden by its criteria");

    // Reverse iteration alike: org0 ← pat0, pat2 ← their documents.
    let mut req = request(
        &f.orgs,
        vec![Criterion::Id {
            ids: vec!["org0".into()],
        }],
    );
    req.revincludes = vec![
        include(&f.pats, vec![f.pat_org], None, false),
        include(&f.docs, vec![f.subject], None, true),
    ];
    let mut pats_and_docs = f.docs_where(|i| i % 2 == 0);
    pats_and_docs.extend(["pat0".to_string(), "pat2".to_string()]);
    assert_eq!(through(&req), pats_and_docs);
    req.include_access = access(vec![(&f.docs, Vec::new())]);
    assert!(
        through(&req).is_empty(),
        "no document through a hidden patient"
    );
    req.include_access = access(vec![
        (
            &f.pats,
            vec![Criterion::Id {
                ids: vec!["pat2".into()],
            }],
        ),
        (&f.docs, vec![code_is(f.kind, "y")]),
    ]);
    let mut expected = f.docs_where(|i| i % 4 == 2);
    expected.insert("pat2".into());
    assert_eq!(through(&req), expected);
}

/// Walks every page of `req` forwards (`count` a page), then back from the last page
/// through `previous`; the ids in order, and whether the walk back gave the same pages.
fn walk_both_ways(mut req: Req) -> (Vec<String>, bool) {
    let mut pages: Vec<Vec<String>> = Vec::new();
    let last = loop {
        let page = search(&req).expect("page");
        pages.push(ids(&page));
        match page.next {
            Some(next) => req.cursor = Some(next),
            None => break page,
        }
    };
    let mut back = last.previous;
    let mut index = pages.len() - 1;
    let mut same = true;
    while let Some(previous) = back {
        index -= 1;
        req.cursor = Some(previous);
        let page = search(&req).expect("previous page");
        same &= ids(&page) == pages[index];
        back = page.previous;
    }
    (pages.concat(), same && index == 0)
}

#[test]
fn a_record_sorted_by_date_pages_from_its_index_exactly_as_computed_keys_would() {
    // Real DocumentReference parameters (the record sort pairs are the hosted types'),
    // on a type of this test's own and a patient nobody else has.
    let rt = fresh_type("Record");
    let patient_key = param_key("DocumentReference", "patient");
    let date_key = param_key("DocumentReference", "date");
    let period_key = param_key("DocumentReference", "period");
    let category_key = param_key("DocumentReference", "category");
    let patient = fresh_type("pat");
    let other = fresh_type("pat");
    for i in 0..90i64 {
        let owner = if i % 9 == 4 { &other } else { &patient };
        // Ties, documents without a date, and periods of several values whose
        // extremes are the keys.
        let day = at(2021, 3, 1) + Duration::days(i % 12);
        let dates = match i % 5 {
            0 => Vec::new(),
            _ => vec![
                DateIndex {
                    key: date_key,
                    low: day,
                    high: day,
                },
                DateIndex {
                    key: period_key,
                    low: day,
                    high: day + Duration::days(i % 4),
                },
                DateIndex {
                    key: period_key,
                    low: day - Duration::days(i % 3),
                    high: day + Duration::days(1),
                },
            ],
        };
        create(
            &rt,
            &format!("d{i:03}"),
            IndexRows {
                references: vec![reference(patient_key, "Patient", owner)],
                tokens: vec![token(
                    category_key,
                    None,
                    if i % 3 == 0 { "a" } else { "b" },
                )],
                dates,
                ..IndexRows::default()
            },
        );
    }
    // A document moved to the other patient and one deleted keep no record rows.
    store()
        .transaction(|tx| {
            tx.update(
                &rt,
                "d001",
                None,
                &IndexRows {
                    references: vec![reference(patient_key, "Patient", &other)],
                    ..IndexRows::default()
                },
                |v, _| {
                    format!(r#"{{"resourceType":"{rt}","id":"d001","meta":{{"versionId":"{v}"}}}}"#)
                },
            )?;
            tx.delete(&rt, "d002", None)
        })
        .expect("moved and deleted");

    let untyped = Criterion::Reference {
        key: patient_key,
        values: vec![ReferenceMatch::Local {
            resource_type: None,
            id: patient.clone(),
        }],
    };
    for (sort_key, descending) in [
        (date_key, true),
        (date_key, false),
        (period_key, true),
        (period_key, false),
    ] {
        for extra in [Vec::new(), vec![code_is(category_key, "b")]] {
            let paged = |record: Criterion| {
                let mut criteria = vec![record];
                criteria.extend(extra.clone());
                let mut req = request(&rt, criteria);
                req.count = 7;
                req.sort = vec![SortKey {
                    field: SortField::Param {
                        key: sort_key,
                        kind: ParamType::Date,
                    },
                    descending,
                }];
                req
            };
            // Typed: read in order from the record's rows. Untyped: the keys computed
            // for every match, then sorted.
            let from_index = paged(refers_to(patient_key, "Patient", &patient));
            let plan = store().explain_search(&from_index).expect("plan");
            assert!(plan.contains("search_record_date_"), "{plan}");
            let (ordered, ordered_back) = walk_both_ways(from_index);
            let (computed, computed_back) = walk_both_ways(paged(untyped.clone()));
            assert_eq!(
                ordered, computed,
                "by {sort_key} descending {descending}, {extra:?}"
            );
            assert!(
                ordered_back && computed_back,
                "previous pages are the same pages"
            );
            let expected = (0..90)
                .filter(|i| i % 9 != 4 && *i != 1 && *i != 2)
                .filter(|i| extra.is_empty() || i % 3 != 0)
                .count();
            assert_eq!(ordered.len(), expected);
            assert!(
                !ordered.contains(&"d001".to_string()) && !ordered.contains(&"d002".to_string())
            );
        }
    }
}
