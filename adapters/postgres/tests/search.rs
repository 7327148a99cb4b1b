//! Search SQL against a real private PostgreSQL cluster, with index rows built by hand so
//! the expected sets are known independently of extraction.

mod common;

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::store;
use fhir_profiles::search::date::parse_range;
use fhir_profiles::search::query::{
    ChainTarget, Criterion, DateMatch, Include, Prefix, ReferenceMatch, SearchRequest, SortField,
    SortKey, StringMode, SystemMatch, TokenMatch, TotalMode,
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

fn request(rt: &str, criteria: Vec<Criterion>) -> SearchRequest {
    SearchRequest {
        resource_type: rt.to_string(),
        criteria,
        sort: Vec::new(),
        count: 1000,
        total: None,
        summary: None,
        elements: None,
        includes: Vec::new(),
        revincludes: Vec::new(),
        cursor: None,
        link_params: Vec::new(),
        ignored: Vec::new(),
    }
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
    let run = |criteria: Vec<Criterion>| {
        set(ids(&store()
            .search(&request(&rt, criteria))
            .expect("search")))
    };
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
            let found = set(ids(&store()
                .search(&request(&rt, vec![criterion]))
                .expect("search")));
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
        let page = store().search(&req).expect("page");
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
    let last_page = store().search(&req).expect("last page");
    let mut back = last_page.previous.clone();
    let mut index = pages.len() - 1;
    while let Some(prev) = back {
        index -= 1;
        req.cursor = Some(prev);
        let page = store().search(&req).expect("previous page");
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
    assert!(store().search(&req).is_err());
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
    let found = set(ids(&store()
        .search(&request(&docs, vec![chain]))
        .expect("chain")));
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
        ids(&store()
            .search(&request(&patients, vec![has("odd")]))
            .expect("has"))
        .len(),
        5
    );
    assert!(ids(&store()
        .search(&request(&patients, vec![has("none")]))
        .expect("has"))
    .is_empty());

    // Totals and a small page.
    let mut req = request(&docs, Vec::new());
    req.count = 3;
    req.total = Some(TotalMode::Accurate);
    let page = store().search(&req).expect("page");
    assert_eq!((page.matches.len(), page.total), (3, Some(20)));
    req.total = Some(TotalMode::Estimate);
    assert!(store().search(&req).expect("estimate").total.is_some());

    // _include the patients of a page; _revinclude documents of patients.
    req.total = None;
    req.includes = vec![Include {
        source_type: docs.clone(),
        keys: vec![subject],
        target_type: None,
        iterate: false,
    }];
    let page = store().search(&req).expect("include");
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
    let page = store().search(&req).expect("revinclude");
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
    let page = store().search(&req).expect("revinclude after delete");
    assert!(!page.included.iter().any(|f| f.id == "doc4"));
    store()
        .transaction(|tx| {
            tx.update(&docs, "doc9", None, &IndexRows::default(), |v, _| {
                format!(r#"{{"resourceType":"x","meta":{{"versionId":"{v}"}}}}"#)
            })
        })
        .expect("updated");
    let page = store().search(&req).expect("revinclude after update");
    let rev: HashSet<String> = page.included.iter().map(|f| f.id.clone()).collect();
    assert_eq!(rev, set(vec!["doc14".into(), "doc19".into()]));
}
