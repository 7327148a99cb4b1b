use proptest::prelude::*;

use super::parse_search;
use crate::outcome::{Issue, IssueType};
use crate::search::date::{parse_range, DateRange};
use crate::search::normalize::truncate_for_index;
use crate::search::query::*;
use crate::search::registry::{param, param_key, ParamKey, ParamType};
use crate::summary::SummaryMode;

const BASE: &str = "http://localhost:8080/fhir";
const DR: &str = "DocumentReference";

fn owned(q: &[(&str, &str)]) -> Vec<(String, String)> {
    q.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse(t: &str, q: &[(&str, &str)]) -> Result<SearchRequest, Vec<Issue>> {
    parse_search(t, &owned(q), BASE, false)
}

fn ok(t: &str, q: &[(&str, &str)]) -> SearchRequest {
    parse(t, q).unwrap_or_else(|e| panic!("{q:?} should parse: {e:#?}"))
}

fn errors(t: &str, q: &[(&str, &str)]) -> Vec<Issue> {
    match parse(t, q) {
        Ok(r) => panic!("{q:?} should be refused, got {r:#?}"),
        Err(issues) => issues,
    }
}

/// The single issue of a refused request, checked to name `names`.
fn error(t: &str, q: &[(&str, &str)], code: IssueType, names: &str) -> Issue {
    let issues = errors(t, q);
    assert_eq!(issues.len(), 1, "{issues:#?}");
    let issue = issues.into_iter().next().unwrap();
    assert_eq!(issue.code, code, "{issue:#?}");
    assert!(issue.is_error());
    assert!(
        issue.diagnostics.contains(names),
        "{:?} should name {names:?}",
        issue.diagnostics
    );
    issue
}

/// The only criterion of `t?name=value`.
fn one(t: &str, name: &str, value: &str) -> Criterion {
    let r = ok(t, &[(name, value)]);
    assert_eq!(r.criteria.len(), 1, "{:#?}", r.criteria);
    r.criteria.into_iter().next().unwrap()
}

fn key(t: &str, code: &str) -> ParamKey {
    param(t, code)
        .unwrap_or_else(|| panic!("{t}.{code} should be registered"))
        .key
}

fn range(s: &str) -> DateRange {
    parse_range(s).unwrap()
}

fn tok(system: SystemMatch, code: Option<&str>) -> TokenMatch {
    TokenMatch {
        system,
        code: code.map(str::to_owned),
    }
}

fn is(s: &str) -> SystemMatch {
    SystemMatch::Is(s.to_owned())
}

fn local(t: Option<&str>, id: &str) -> ReferenceMatch {
    ReferenceMatch::Local {
        resource_type: t.map(str::to_owned),
        id: id.to_owned(),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------- tokens

#[test]
fn token_forms() {
    assert_eq!(
        one(DR, "status", "current,|superseded,http://s|x,http://s|"),
        Criterion::Token {
            key: key(DR, "status"),
            negated: false,
            values: vec![
                tok(SystemMatch::Any, Some("current")),
                tok(SystemMatch::NoSystem, Some("superseded")),
                tok(is("http://s"), Some("x")),
                tok(is("http://s"), None),
            ],
        }
    );
}

#[test]
fn repeated_parameters_are_anded() {
    let r = ok(DR, &[("type", "a"), ("type", "b")]);
    assert_eq!(r.criteria.len(), 2);
    assert_eq!(
        r.criteria[1],
        Criterion::Token {
            key: key(DR, "type"),
            negated: false,
            values: vec![tok(SystemMatch::Any, Some("b"))],
        }
    );
}

#[test]
fn token_not_text_and_missing() {
    assert_eq!(
        one(DR, "status:not", "entered-in-error"),
        Criterion::Token {
            key: key(DR, "status"),
            negated: true,
            values: vec![tok(SystemMatch::Any, Some("entered-in-error"))],
        }
    );
    assert_eq!(
        one(DR, "type:text", "Discharge  SUMMÄRY,note"),
        Criterion::TokenText {
            key: key(DR, "type"),
            values: strings(&["discharge summary", "note"]),
        }
    );
    assert_eq!(
        one(DR, "category:missing", "true"),
        Criterion::Missing {
            key: key(DR, "category"),
            kind: ParamType::Token,
            missing: true,
        }
    );
    assert_eq!(
        one(DR, "category:missing", "false"),
        Criterion::Missing {
            key: key(DR, "category"),
            kind: ParamType::Token,
            missing: false,
        }
    );
    error(
        DR,
        &[("category:missing", "maybe")],
        IssueType::Invalid,
        "category:missing",
    );
    error(
        DR,
        &[("category:missing", "true,false")],
        IssueType::Invalid,
        "category:missing",
    );
}

#[test]
fn of_type_on_identifiers() {
    let system = "http://terminology.hl7.org/CodeSystem/v2-0203";
    assert_eq!(
        one(
            "Patient",
            "identifier:of-type",
            &format!("{system}|MR|12345")
        ),
        Criterion::Token {
            key: param_key("Patient", "identifier:of-type"),
            negated: false,
            values: vec![tok(is(system), Some("MR|12345"))],
        }
    );
    assert_eq!(
        one(DR, "identifier:of-type", "|MR|1"),
        Criterion::Token {
            key: param_key(DR, "identifier:of-type"),
            negated: false,
            values: vec![tok(SystemMatch::NoSystem, Some("MR|1"))],
        }
    );
    error(
        "Patient",
        &[("identifier:of-type", "http://s|MR")],
        IssueType::Invalid,
        "identifier:of-type",
    );
    error(
        DR,
        &[("status:of-type", "a|b|c")],
        IssueType::Invalid,
        "status:of-type",
    );
}

#[test]
fn token_modifiers_refused() {
    for m in ["in", "below", "above", "not-in"] {
        let name = format!("type:{m}");
        error(DR, &[(&name, "x")], IssueType::NotSupported, &name);
    }
    error(DR, &[("type:exact", "x")], IssueType::Invalid, "type:exact");
    error(DR, &[("type:foo", "x")], IssueType::Invalid, "type:foo");
    error(DR, &[("type", "a|b|c")], IssueType::Invalid, "'type'");
    error(DR, &[("type", "|")], IssueType::Invalid, "'type'");
}

#[test]
fn meta_tokens_and_uris() {
    assert_eq!(
        one(DR, "_tag", "http://t|a"),
        Criterion::Token {
            key: key(DR, "_tag"),
            negated: false,
            values: vec![tok(is("http://t"), Some("a"))],
        }
    );
    assert_eq!(
        one(DR, "_security:not", "http://s|R"),
        Criterion::Token {
            key: key(DR, "_security"),
            negated: true,
            values: vec![tok(is("http://s"), Some("R"))],
        }
    );
    assert_eq!(
        one(DR, "_profile", "http://p/1"),
        Criterion::Uri {
            key: key(DR, "_profile"),
            mode: UriMode::Exact,
            values: strings(&["http://p/1"]),
        }
    );
    assert_eq!(
        one(DR, "_source:below", "http://src"),
        Criterion::Uri {
            key: key(DR, "_source"),
            mode: UriMode::Below,
            values: strings(&["http://src"]),
        }
    );
}

// ---------------------------------------------------------------- escaping

#[test]
fn escapes() {
    assert_eq!(
        one(DR, "identifier", r"http://s|a\|b,c\,d,e\\f"),
        Criterion::Token {
            key: key(DR, "identifier"),
            negated: false,
            values: vec![
                tok(is("http://s"), Some("a|b")),
                tok(SystemMatch::Any, Some("c,d")),
                tok(SystemMatch::Any, Some(r"e\f")),
            ],
        }
    );
    assert_eq!(
        one(DR, "description:exact", r"a\,b\$c\d"),
        Criterion::String {
            key: key(DR, "description"),
            mode: StringMode::Exact,
            values: strings(&[r"a,b$c\d"]),
        }
    );
}

#[test]
fn empty_values_are_ignored() {
    let r = ok(
        DR,
        &[
            ("status", ""),
            ("type", ",,"),
            ("date", ""),
            ("_sort", ""),
            ("_include", " "),
            ("_elements", ""),
            ("_count", ""),
            ("_count", "5"),
        ],
    );
    assert_eq!(r.count, 5);
    assert_eq!(r.elements, None);
    assert!(r.criteria.is_empty());
    assert_eq!(r.link_params, vec![("_count".into(), "5".into())]);
    assert_eq!(
        one(DR, "status", "a,,b"),
        Criterion::Token {
            key: key(DR, "status"),
            negated: false,
            values: vec![
                tok(SystemMatch::Any, Some("a")),
                tok(SystemMatch::Any, Some("b"))
            ],
        }
    );
    // An empty value does not hide an unknown parameter.
    error(DR, &[("foo", "")], IssueType::Invalid, "'foo'");
}

// ---------------------------------------------------------------- references

#[test]
fn reference_forms() {
    let refs = |name: &str, value: &str| match one(DR, name, value) {
        Criterion::Reference { key: k, values } => {
            let code = name.split(':').next().unwrap();
            assert_eq!(k, key(DR, code));
            values
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        refs("subject", "Patient/1"),
        vec![local(Some("Patient"), "1")]
    );
    // A single target type names the type of a bare id.
    assert_eq!(
        refs("custodian", "1"),
        vec![local(Some("Organization"), "1")]
    );
    assert_eq!(refs("subject", "1"), vec![local(None, "1")]);
    assert_eq!(
        refs("subject:Patient", "1"),
        vec![local(Some("Patient"), "1")]
    );
    assert_eq!(
        refs("subject:Patient", "Patient/1"),
        vec![local(Some("Patient"), "1")]
    );
    assert_eq!(
        refs("subject", &format!("{BASE}/Patient/7")),
        vec![local(Some("Patient"), "7")]
    );
    assert_eq!(
        refs("subject", "Patient/7/_history/3"),
        vec![local(Some("Patient"), "7")]
    );
    assert_eq!(
        refs("subject", &format!("{BASE}/Patient/7/_history/2")),
        vec![local(Some("Patient"), "7")]
    );
    assert_eq!(
        refs("subject", "http://other.org/fhir/Patient/7,urn:uuid:1234"),
        vec![
            ReferenceMatch::Url("http://other.org/fhir/Patient/7".into()),
            ReferenceMatch::Url("urn:uuid:1234".into())
        ]
    );
    assert_eq!(
        refs("author", "Practitioner/a,Organization/b"),
        vec![
            local(Some("Practitioner"), "a"),
            local(Some("Organization"), "b")
        ]
    );
}

#[test]
fn reference_modifiers() {
    assert_eq!(
        one(DR, "subject:identifier", "http://mrn|123"),
        Criterion::Token {
            key: param_key(DR, "subject:identifier"),
            negated: false,
            values: vec![tok(is("http://mrn"), Some("123"))],
        }
    );
    assert_eq!(
        one(DR, "custodian:missing", "true"),
        Criterion::Missing {
            key: key(DR, "custodian"),
            kind: ParamType::Reference,
            missing: true,
        }
    );
    error(
        DR,
        &[("subject:Encounter", "1")],
        IssueType::Invalid,
        "subject:Encounter",
    );
    error(
        DR,
        &[("subject:Patient", "Group/1")],
        IssueType::Invalid,
        "subject:Patient",
    );
    error(DR, &[("subject", "Foo/1")], IssueType::Invalid, "'subject'");
    error(
        DR,
        &[("subject", "Patient/")],
        IssueType::Invalid,
        "'subject'",
    );
    error(
        DR,
        &[("subject:below", "x")],
        IssueType::NotSupported,
        "subject:below",
    );
    error(
        DR,
        &[("subject:exact", "x")],
        IssueType::Invalid,
        "subject:exact",
    );
}

// ---------------------------------------------------------------- dates

#[test]
fn date_prefixes() {
    let cases = [
        ("2020", Prefix::Eq),
        ("eq2020", Prefix::Eq),
        ("ne2020", Prefix::Ne),
        ("lt2020", Prefix::Lt),
        ("gt2020", Prefix::Gt),
        ("le2020", Prefix::Le),
        ("ge2020", Prefix::Ge),
        ("sa2020", Prefix::Sa),
        ("eb2020", Prefix::Eb),
        ("ap2020", Prefix::Ap),
    ];
    for (value, prefix) in cases {
        assert_eq!(
            one(DR, "date", value),
            Criterion::Date {
                key: key(DR, "date"),
                values: vec![DateMatch {
                    prefix,
                    range: range("2020")
                }],
            },
            "{value}"
        );
    }
}

#[test]
fn date_precisions_and_or() {
    assert_eq!(
        one(DR, "period", "ge2020-03-01T10:00,lt2021-01-01T00:00:00Z"),
        Criterion::Date {
            key: key(DR, "period"),
            values: vec![
                DateMatch {
                    prefix: Prefix::Ge,
                    range: range("2020-03-01T10:00")
                },
                DateMatch {
                    prefix: Prefix::Lt,
                    range: range("2021-01-01T00:00:00Z")
                },
            ],
        }
    );
    // An unencoded `+` of an offset arrives as a space.
    assert_eq!(
        one(DR, "date", "2020-03-01T10:00:00 02:00"),
        Criterion::Date {
            key: key(DR, "date"),
            values: vec![DateMatch {
                prefix: Prefix::Eq,
                range: range("2020-03-01T10:00:00+02:00")
            }],
        }
    );
    assert_eq!(
        one("Patient", "birthdate:missing", "true"),
        Criterion::Missing {
            key: key("Patient", "birthdate"),
            kind: ParamType::Date,
            missing: true,
        }
    );
}

#[test]
fn malformed_dates() {
    for bad in [
        "2020-13",
        "yesterday",
        "xx2020",
        "ge",
        "2020-01-01T25:00",
        "ge2020-",
    ] {
        error(DR, &[("date", bad)], IssueType::Invalid, "'date'");
    }
    error(
        DR,
        &[("date:exact", "2020")],
        IssueType::Invalid,
        "date:exact",
    );
    error(
        DR,
        &[("_lastUpdated", "soon")],
        IssueType::Invalid,
        "_lastUpdated",
    );
}

// ---------------------------------------------------------------- strings and uris

#[test]
fn string_modes() {
    assert_eq!(
        one("Patient", "name", "Chalmérs, Peter"),
        Criterion::String {
            key: key("Patient", "name"),
            mode: StringMode::Prefix,
            values: strings(&["chalmers", "peter"]),
        }
    );
    assert_eq!(
        one("Patient", "family:exact", "Chalmérs"),
        Criterion::String {
            key: key("Patient", "family"),
            mode: StringMode::Exact,
            values: strings(&["Chalmérs"]),
        }
    );
    assert_eq!(
        one("Patient", "given:contains", "ETE"),
        Criterion::String {
            key: key("Patient", "given"),
            mode: StringMode::Contains,
            values: strings(&["ete"]),
        }
    );
    assert_eq!(
        one(DR, "description:missing", "false"),
        Criterion::Missing {
            key: key(DR, "description"),
            kind: ParamType::String,
            missing: false,
        }
    );
    error(
        "Patient",
        &[("name:text", "x")],
        IssueType::Invalid,
        "name:text",
    );
    error(
        "Patient",
        &[("name:below", "x")],
        IssueType::Invalid,
        "name:below",
    );
}

#[test]
fn long_values_are_cut_like_the_index() {
    let long = "x".repeat(5000);
    match one("Patient", "family:exact", &long) {
        Criterion::String { values, .. } => {
            assert_eq!(values, vec![truncate_for_index(&long).to_owned()])
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn uri_modes() {
    for (name, mode) in [
        ("location", UriMode::Exact),
        ("location:below", UriMode::Below),
        ("location:above", UriMode::Above),
    ] {
        assert_eq!(
            one(DR, name, "http://files/a"),
            Criterion::Uri {
                key: key(DR, "location"),
                mode,
                values: strings(&["http://files/a"]),
            }
        );
    }
    assert_eq!(
        one(DR, "location:missing", "true"),
        Criterion::Missing {
            key: key(DR, "location"),
            kind: ParamType::Uri,
            missing: true,
        }
    );
    error(
        DR,
        &[("location:contains", "x")],
        IssueType::Invalid,
        "location:contains",
    );
}

// ---------------------------------------------------------------- composite

#[test]
fn composite_relationship() {
    let expect = |codes: &[&str]| Criterion::Token {
        key: key(DR, "relationship"),
        negated: false,
        values: codes
            .iter()
            .map(|c| tok(SystemMatch::Any, Some(c)))
            .collect(),
    };
    assert_eq!(
        one(DR, "relationship", "replaces$DocumentReference/123"),
        expect(&["replaces$DocumentReference/123"])
    );
    assert_eq!(
        one(
            DR,
            "relationship",
            &format!("replaces${BASE}/DocumentReference/9,http://hl7.org/fhir/document-relationship-type|appends$abc")
        ),
        expect(&[
            "replaces$DocumentReference/9",
            "appends$DocumentReference/abc"
        ])
    );
    assert_eq!(
        one(
            DR,
            "relationship",
            "replaces$http://x.org/DocumentReference/1"
        ),
        expect(&["replaces$http://x.org/DocumentReference/1"])
    );
    assert_eq!(
        one(DR, "relationship:missing", "true"),
        Criterion::Missing {
            key: key(DR, "relationship"),
            kind: ParamType::Token,
            missing: true,
        }
    );
    error(
        DR,
        &[("relationship", "replaces")],
        IssueType::Invalid,
        "relationship",
    );
    error(
        DR,
        &[("relationship", "a$b$c")],
        IssueType::Invalid,
        "relationship",
    );
    error(
        DR,
        &[("relationship", "$x")],
        IssueType::Invalid,
        "relationship",
    );
    // An escaped `$` does not split the components.
    error(
        DR,
        &[("relationship", r"replaces\$x")],
        IssueType::Invalid,
        "relationship",
    );
    error(
        DR,
        &[("relationship:not", "a$b")],
        IssueType::Invalid,
        "relationship:not",
    );
}

// ---------------------------------------------------------------- _id, _lastUpdated

#[test]
fn id_and_last_updated() {
    assert_eq!(
        one(DR, "_id", "a,b"),
        Criterion::Id {
            ids: strings(&["a", "b"])
        }
    );
    assert_eq!(
        one(DR, "_lastUpdated", "gt2020-01-01,le2020-02"),
        Criterion::LastUpdated {
            values: vec![
                DateMatch {
                    prefix: Prefix::Gt,
                    range: range("2020-01-01")
                },
                DateMatch {
                    prefix: Prefix::Le,
                    range: range("2020-02")
                },
            ]
        }
    );
    error(DR, &[("_id:not", "a")], IssueType::NotSupported, "_id:not");
    error(
        DR,
        &[("_lastUpdated:missing", "true")],
        IssueType::NotSupported,
        "_lastUpdated:missing",
    );
}

// ---------------------------------------------------------------- chains

fn chain(c: Criterion) -> (ParamKey, Vec<(String, Criterion)>) {
    match c {
        Criterion::Chain { key, targets } => (
            key,
            targets
                .into_iter()
                .map(|t| (t.resource_type, *t.criterion))
                .collect(),
        ),
        other => panic!("not a chain: {other:?}"),
    }
}

#[test]
fn simple_chain() {
    let (k, targets) = chain(one(DR, "patient.identifier", "http://mrn|42"));
    assert_eq!(k, key(DR, "patient"));
    assert_eq!(
        targets,
        vec![(
            "Patient".to_owned(),
            Criterion::Token {
                key: key("Patient", "identifier"),
                negated: false,
                values: vec![tok(is("http://mrn"), Some("42"))],
            }
        )]
    );
}

#[test]
fn chain_fans_out_over_targets_that_have_the_parameter() {
    let (k, targets) = chain(one(DR, "author.family", "Smith"));
    assert_eq!(k, key(DR, "author"));
    let mut types: Vec<&str> = targets.iter().map(|(t, _)| t.as_str()).collect();
    types.sort();
    assert_eq!(types, ["Patient", "Practitioner"]);
    for (t, c) in &targets {
        assert_eq!(
            *c,
            Criterion::String {
                key: key(t, "family"),
                mode: StringMode::Prefix,
                values: strings(&["smith"]),
            }
        );
    }
}

#[test]
fn chain_narrowed_by_type_and_inner_modifier() {
    let (_, targets) = chain(one(DR, "subject:Patient.name", "peter"));
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].0, "Patient");
    let (_, targets) = chain(one(DR, "patient.name:exact", "Peter"));
    assert_eq!(
        targets[0].1,
        Criterion::String {
            key: key("Patient", "name"),
            mode: StringMode::Exact,
            values: strings(&["Peter"]),
        }
    );
}

#[test]
fn multi_level_chain() {
    let (k, targets) = chain(one(DR, "subject:Patient.organization.name", "Acme"));
    assert_eq!(k, key(DR, "subject"));
    assert_eq!(targets.len(), 1);
    let (inner_key, inner) = chain(targets[0].1.clone());
    assert_eq!(inner_key, key("Patient", "organization"));
    assert_eq!(
        inner,
        vec![(
            "Organization".to_owned(),
            Criterion::String {
                key: key("Organization", "name"),
                mode: StringMode::Prefix,
                values: strings(&["acme"]),
            }
        )]
    );
}

#[test]
fn chain_errors() {
    error(
        DR,
        &[("patient.foo", "x")],
        IssueType::Invalid,
        "patient.foo",
    );
    error(
        DR,
        &[("status.code", "x")],
        IssueType::Invalid,
        "status.code",
    );
    error(
        DR,
        &[("subject:Encounter.name", "x")],
        IssueType::Invalid,
        "subject:Encounter.name",
    );
    error(DR, &[("patient.", "x")], IssueType::Invalid, "'patient.'");
    error(
        DR,
        &[("patient.birthdate", "soon")],
        IssueType::Invalid,
        "patient.birthdate",
    );
    error(
        DR,
        &[("patient.name:foo", "x")],
        IssueType::Invalid,
        "patient.name:foo",
    );
    // Even when lenient: the chain's head is known.
    assert!(parse_search(DR, &owned(&[("patient.foo", "x")]), BASE, true).is_err());
    // A chain that would nest without end is cut off.
    let deep = "patient.link.link.link.link.link.link.name";
    error(DR, &[(deep, "x")], IssueType::Invalid, deep);
}

#[test]
fn chain_expansion_is_bounded() {
    use super::criteria::{criterion, Cx, Fault};
    let name = "related._id";
    // One criterion for the chain and one per hosted type `related` can point to.
    let cx = Cx::with_budget(name, BASE, 3);
    match criterion(&cx, DR, name, "x", 0) {
        Err(Fault::Bad(issue)) => {
            assert_eq!(issue.code, IssueType::TooCostly);
            assert!(issue.diagnostics.contains(name));
        }
        other => panic!("{other:?}"),
    }
    let cx = Cx::with_budget(name, BASE, 64);
    assert!(matches!(
        criterion(&cx, DR, name, "x", 0),
        Ok(Some(Criterion::Chain { .. }))
    ));
    // The deepest chain the hosted types allow stays within the default budget.
    assert_eq!(
        chain(one(DR, name, "x")).1.len(),
        crate::resource_types::HOSTED.len()
    );
    let deep = "related.related.related.related._id";
    let (_, top) = chain(one(DR, deep, "x"));
    assert_eq!(top.len(), 1);
}

// ---------------------------------------------------------------- _has

#[test]
fn reverse_chain() {
    assert_eq!(
        one("Patient", "_has:DocumentReference:patient:type", "X"),
        Criterion::Has {
            source_type: DR.into(),
            key: key(DR, "patient"),
            criterion: Box::new(Criterion::Token {
                key: key(DR, "type"),
                negated: false,
                values: vec![tok(SystemMatch::Any, Some("X"))],
            }),
        }
    );
    assert_eq!(
        one(
            "Patient",
            "_has:DocumentReference:subject:status:not",
            "current"
        ),
        Criterion::Has {
            source_type: DR.into(),
            key: key(DR, "subject"),
            criterion: Box::new(Criterion::Token {
                key: key(DR, "status"),
                negated: true,
                values: vec![tok(SystemMatch::Any, Some("current"))],
            }),
        }
    );
}

#[test]
fn nested_reverse_chain() {
    assert_eq!(
        one(
            "Patient",
            "_has:DocumentReference:patient:_has:DocumentReference:relatesto:status",
            "current"
        ),
        Criterion::Has {
            source_type: DR.into(),
            key: key(DR, "patient"),
            criterion: Box::new(Criterion::Has {
                source_type: DR.into(),
                key: key(DR, "relatesto"),
                criterion: Box::new(Criterion::Token {
                    key: key(DR, "status"),
                    negated: false,
                    values: vec![tok(SystemMatch::Any, Some("current"))],
                }),
            }),
        }
    );
    // _has whose criterion is a chain.
    match one(
        "Patient",
        "_has:DocumentReference:patient:author.family",
        "x",
    ) {
        Criterion::Has { criterion, .. } => {
            assert!(matches!(*criterion, Criterion::Chain { .. }))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn reverse_chain_errors() {
    for name in [
        "_has:DocumentReference:custodian:type",
        "_has:Observation:patient:code",
        "_has:DocumentReference:status:type",
        "_has:DocumentReference:foo:type",
        "_has:DocumentReference:patient:foo",
        "_has:DocumentReference:patient",
        "_has:DocumentReference",
        "_has:",
    ] {
        error("Patient", &[(name, "x")], IssueType::Invalid, name);
        assert!(
            parse_search("Patient", &owned(&[(name, "x")]), BASE, true).is_err(),
            "{name} is refused even when lenient"
        );
    }
}

// ---------------------------------------------------------------- result parameters

#[test]
fn count() {
    assert_eq!(ok(DR, &[]).count, DEFAULT_COUNT);
    assert_eq!(ok(DR, &[("_count", "50")]).count, 50);
    assert_eq!(ok(DR, &[("_count", "0")]).count, 0);
    let r = ok(DR, &[("_count", "5000")]);
    assert_eq!(r.count, MAX_COUNT);
    assert_eq!(
        r.link_params,
        vec![("_count".into(), MAX_COUNT.to_string())]
    );
    assert_eq!(
        ok(DR, &[("_count", "99999999999999999999999999")]).count,
        MAX_COUNT
    );
    assert_eq!(ok(DR, &[("_count", "")]).count, DEFAULT_COUNT);
    for bad in ["-1", "abc", "1.5", "1 2"] {
        error(DR, &[("_count", bad)], IssueType::Invalid, "_count");
    }
    error(
        DR,
        &[("_count", "1"), ("_count", "2")],
        IssueType::Invalid,
        "_count",
    );
    error(DR, &[("_count:x", "1")], IssueType::Invalid, "_count:x");
}

#[test]
fn sort() {
    let r = ok(
        DR,
        &[(
            "_sort",
            "-date,_id,status,-_lastUpdated,description,location",
        )],
    );
    assert_eq!(
        r.sort,
        vec![
            SortKey {
                field: SortField::Param {
                    key: key(DR, "date"),
                    kind: ParamType::Date
                },
                descending: true
            },
            SortKey {
                field: SortField::Id,
                descending: false
            },
            SortKey {
                field: SortField::Param {
                    key: key(DR, "status"),
                    kind: ParamType::Token
                },
                descending: false
            },
            SortKey {
                field: SortField::LastUpdated,
                descending: true
            },
            SortKey {
                field: SortField::Param {
                    key: key(DR, "description"),
                    kind: ParamType::String
                },
                descending: false
            },
            SortKey {
                field: SortField::Param {
                    key: key(DR, "location"),
                    kind: ParamType::Uri
                },
                descending: false
            },
        ]
    );
    error(
        DR,
        &[("_sort", "subject")],
        IssueType::NotSupported,
        "_sort",
    );
    error(
        DR,
        &[("_sort", "relationship")],
        IssueType::NotSupported,
        "_sort",
    );
    error(DR, &[("_sort", "foo")], IssueType::Invalid, "'foo'");
    error(
        DR,
        &[("_sort", "date,,status")],
        IssueType::Invalid,
        "_sort",
    );
    error(DR, &[("_sort", "-")], IssueType::Invalid, "_sort");
    assert_eq!(errors(DR, &[("_sort", "foo,bar")]).len(), 2);
}

#[test]
fn total_summary_elements() {
    assert_eq!(ok(DR, &[]).total, None);
    for (v, mode) in [
        ("none", TotalMode::None),
        ("estimate", TotalMode::Estimate),
        ("accurate", TotalMode::Accurate),
    ] {
        assert_eq!(ok(DR, &[("_total", v)]).total, Some(mode));
    }
    error(DR, &[("_total", "all")], IssueType::Invalid, "_total");
    for (v, mode) in [
        ("true", SummaryMode::True),
        ("text", SummaryMode::Text),
        ("data", SummaryMode::Data),
        ("count", SummaryMode::Count),
        ("false", SummaryMode::False),
    ] {
        assert_eq!(ok(DR, &[("_summary", v)]).summary, Some(mode));
    }
    error(DR, &[("_summary", "some")], IssueType::Invalid, "_summary");
    let r = ok(
        DR,
        &[("_elements", "status, type"), ("_elements", "subject")],
    );
    assert_eq!(r.elements, Some(strings(&["status", "type", "subject"])));
}

#[test]
fn cursor_format_pretty() {
    let r = ok(
        DR,
        &[
            ("status", "current"),
            ("_cursor", "opaque+/=="),
            ("_format", "xml"),
            ("_pretty", "true"),
        ],
    );
    assert_eq!(r.cursor.as_deref(), Some("opaque+/=="));
    assert_eq!(r.criteria.len(), 1);
    assert_eq!(
        r.link_params,
        vec![
            ("status".into(), "current".into()),
            ("_format".into(), "xml".into()),
            ("_pretty".into(), "true".into()),
        ]
    );
}

#[test]
fn link_params_keep_request_order() {
    let q = [
        ("_sort", "-date"),
        ("subject:Patient.name", "peter"),
        ("_count", "10"),
        ("status", r"a\,b,c"),
        ("_include", "DocumentReference:subject"),
        ("_total", "accurate"),
        ("_summary", "data"),
        ("_elements", "status"),
    ];
    let r = ok(DR, &q);
    let expected: Vec<(String, String)> = owned(&q);
    assert_eq!(r.link_params, expected);
    // The link params parse back to the same request.
    let again = parse_search(DR, &r.link_params, BASE, false).unwrap();
    assert_eq!(again, r);
}

// ---------------------------------------------------------------- includes

#[test]
fn includes() {
    let r = ok(
        DR,
        &[
            ("_include", "DocumentReference:subject"),
            ("_include", "DocumentReference:subject:Patient"),
            ("_include:iterate", "Patient:organization"),
            (
                "_include:recurse",
                "Patient:general-practitioner:Practitioner",
            ),
        ],
    );
    assert_eq!(
        r.includes,
        vec![
            Include {
                source_type: DR.into(),
                keys: vec![key(DR, "subject")],
                target_type: None,
                iterate: false,
            },
            Include {
                source_type: DR.into(),
                keys: vec![key(DR, "subject")],
                target_type: Some("Patient".into()),
                iterate: false,
            },
            Include {
                source_type: "Patient".into(),
                keys: vec![key("Patient", "organization")],
                target_type: None,
                iterate: true,
            },
            Include {
                source_type: "Patient".into(),
                keys: vec![key("Patient", "general-practitioner")],
                target_type: Some("Practitioner".into()),
                iterate: true,
            },
        ]
    );
}

#[test]
fn wildcard_includes() {
    let all: Vec<ParamKey> = crate::search::registry::params(DR)
        .iter()
        .filter(|p| p.kind == ParamType::Reference)
        .map(|p| p.key)
        .collect();
    assert!(all.contains(&key(DR, "subject")));
    assert!(all.contains(&key(DR, "custodian")));
    for value in ["*", "DocumentReference:*"] {
        let r = ok(DR, &[("_include", value)]);
        assert_eq!(r.includes.len(), 1);
        assert_eq!(r.includes[0].source_type, DR);
        assert_eq!(r.includes[0].keys, all);
    }
    // Reverse: only the parameters that can point at the searched type.
    let r = ok("Patient", &[("_revinclude", "DocumentReference:*")]);
    let keys = &r.revincludes[0].keys;
    assert!(keys.contains(&key(DR, "patient")));
    assert!(keys.contains(&key(DR, "subject")));
    assert!(!keys.contains(&key(DR, "custodian")));
    error(
        "Patient",
        &[("_revinclude", "*")],
        IssueType::NotSupported,
        "_revinclude",
    );
}

#[test]
fn revincludes() {
    let r = ok(
        "Patient",
        &[
            ("_revinclude", "DocumentReference:patient"),
            ("_revinclude:iterate", "DocumentReference:relatesto"),
        ],
    );
    assert_eq!(
        r.revincludes,
        vec![
            Include {
                source_type: DR.into(),
                keys: vec![key(DR, "patient")],
                target_type: None,
                iterate: false,
            },
            Include {
                source_type: DR.into(),
                keys: vec![key(DR, "relatesto")],
                target_type: None,
                iterate: true,
            },
        ]
    );
    assert!(r.includes.is_empty());
}

#[test]
fn include_errors() {
    for (t, name, value) in [
        (DR, "_include", "Patient:organization"),
        (DR, "_include", "DocumentReference:status"),
        (DR, "_include", "DocumentReference:foo"),
        (DR, "_include", "DocumentReference:subject:Encounter"),
        (DR, "_include", "Observation:subject"),
        (DR, "_include", "DocumentReference"),
        (DR, "_include", "DocumentReference:subject:Patient:x"),
        (DR, "_include:foo", "DocumentReference:subject"),
        ("Patient", "_revinclude", "DocumentReference:custodian"),
        ("Patient", "_revinclude", "DocumentReference:subject:Group"),
    ] {
        error(t, &[(name, value)], IssueType::Invalid, name);
    }
}

// ---------------------------------------------------------------- unknown, lenient

#[test]
fn unknown_parameters_strict() {
    let issue = error(DR, &[("foo", "1")], IssueType::Invalid, "foo");
    assert_eq!(
        issue.diagnostics,
        "unknown search parameter 'foo' for DocumentReference"
    );
    error(DR, &[("foo.bar", "1")], IssueType::Invalid, "'foo'");
    error(DR, &[("foo:exact", "1")], IssueType::Invalid, "'foo'");
    error(DR, &[("_bogus", "1")], IssueType::Invalid, "'_bogus'");
    // A parameter of another type.
    error(
        DR,
        &[("birthdate", "2020")],
        IssueType::Invalid,
        "'birthdate'",
    );
    for name in [
        "_text",
        "_content",
        "_list",
        "_query",
        "_filter",
        "_type",
        "_contained",
        "_containedType",
    ] {
        error(DR, &[(name, "x")], IssueType::NotSupported, name);
    }
}

#[test]
fn unknown_parameters_lenient() {
    let q = owned(&[
        ("foo", "1"),
        ("status", "current"),
        ("_text", "cancer"),
        ("bar:exact", "2"),
        ("baz.name", "3"),
    ]);
    let r = parse_search(DR, &q, BASE, true).unwrap();
    assert_eq!(
        r.ignored,
        strings(&["foo", "_text", "bar:exact", "baz.name"])
    );
    assert_eq!(r.criteria.len(), 1);
    assert_eq!(r.link_params, vec![("status".into(), "current".into())]);
    // Malformed values and modifiers of known parameters are still refused.
    for (n, v) in [("date", "soon"), ("status:foo", "x"), ("_count", "x")] {
        let q = owned(&[("foo", "1"), (n, v)]);
        let issues = parse_search(DR, &q, BASE, true).unwrap_err();
        assert_eq!(issues.len(), 1);
        assert!(issues[0].diagnostics.contains(n.split(':').next().unwrap()));
    }
}

#[test]
fn every_issue_is_collected() {
    let issues = errors(
        DR,
        &[
            ("foo", "1"),
            ("date", "soon"),
            ("status", "ok"),
            ("_count", "-3"),
            ("_include", "Bogus:x"),
            ("type:below", "x"),
        ],
    );
    assert_eq!(issues.len(), 5, "{issues:#?}");
    for (issue, name) in issues
        .iter()
        .zip(["'foo'", "'date'", "_count", "_include", "type:below"])
    {
        assert!(issue.is_error());
        assert!(issue.diagnostics.contains(name), "{issue:?} names {name}");
    }
}

// ---------------------------------------------------------------- fuzz

const NAMES: &[&str] = &[
    "status",
    "subject",
    "subject:Patient",
    "patient",
    "patient.name",
    "author.family",
    "date",
    "period",
    "relationship",
    "description",
    "location",
    "identifier",
    "identifier:of-type",
    "type:text",
    "_id",
    "_lastUpdated",
    "_tag",
    "_has:DocumentReference:patient:type",
    "_count",
    "_sort",
    "_include",
    "_revinclude:iterate",
    "_total",
    "_summary",
    "_elements",
    "_cursor",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(NAMES).prop_map(str::to_owned),
        (
            proptest::sample::select(NAMES),
            "[:.a-zA-Z_\\-$|\\\\*]{0,12}"
        )
            .prop_map(|(n, s)| format!("{n}{s}")),
        "[:.a-zA-Z_\\-]{0,24}",
        any::<String>(),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9|$,\\\\:/._\\- +TZ]{0,30}",
        "(eq|ne|gt|lt|ge|le|sa|eb|ap|xx)?[0-9]{1,4}(-[0-9]{1,2}){0,2}(T[0-9:.]{0,12})?[Z+\\- ]?[0-9:]{0,5}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_requests_never_panic(
        params in proptest::collection::vec((name(), value()), 0..6),
        lenient in any::<bool>(),
        patient in any::<bool>(),
    ) {
        let t = if patient { "Patient" } else { DR };
        if let Err(issues) = parse_search(t, &params, BASE, lenient) {
            prop_assert!(!issues.is_empty());
            prop_assert!(issues.iter().all(|i| i.is_error() && !i.diagnostics.is_empty()));
        }
    }
}
