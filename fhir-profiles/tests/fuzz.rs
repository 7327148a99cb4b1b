//! parse_resource, validate_resource and to_xml_string never panic: random bytes, and
//! official examples with random mutations (deleted, retyped, renamed and duplicated elements).

mod common;

use fhir_profiles::format::{parse_resource, to_xml_string, FhirFormat};
use fhir_profiles::validate::validate_resource;
use std::sync::LazyLock;

use proptest::prelude::*;
use serde_json::{json, Value};

/// One change to a JSON tree, applied at the `at`-th node in document order.
#[derive(Debug, Clone)]
enum Mutation {
    Delete,
    Replace(Value),
    Rename(String),
    Wrap,
    Duplicate,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
        Just(json!({})),
        Just(json!([])),
        Just(json!({"resourceType": "Patient"})),
        Just(json!("#")),
        Just(json!({"reference": "#x"})),
        Just(json!(
            "<div xmlns=\"http://www.w3.org/1999/xhtml\"><script/></div>"
        )),
    ];
    prop_oneof![
        Just(Mutation::Delete),
        scalar.prop_map(Mutation::Replace),
        "[a-zA-Z_]{1,10}".prop_map(Mutation::Rename),
        Just(Mutation::Wrap),
        Just(Mutation::Duplicate),
    ]
}

fn mutate(value: &mut Value, at: &mut usize, m: &Mutation) -> bool {
    if *at == 0 {
        match m {
            Mutation::Replace(v) => *value = v.clone(),
            Mutation::Wrap => *value = Value::Array(vec![value.clone()]),
            Mutation::Duplicate => *value = Value::Array(vec![value.clone(), value.clone()]),
            _ => return false,
        }
        return true;
    }
    *at -= 1;
    match value {
        Value::Object(obj) => {
            let keys: Vec<String> = obj.keys().cloned().collect();
            for key in keys {
                if *at == 0 {
                    match m {
                        Mutation::Delete => {
                            obj.remove(&key);
                            return true;
                        }
                        Mutation::Rename(new) => {
                            if let Some(v) = obj.remove(&key) {
                                obj.insert(new.clone(), v);
                            }
                            return true;
                        }
                        _ => {}
                    }
                }
                if let Some(child) = obj.get_mut(&key) {
                    if mutate(child, at, m) {
                        return true;
                    }
                }
            }
            false
        }
        Value::Array(items) => items.iter_mut().any(|item| mutate(item, at, m)),
        _ => false,
    }
}

/// Read once: proptest calls the body hundreds of times.
static EXAMPLES: LazyLock<Vec<Value>> = LazyLock::new(|| {
    common::hosted_examples()
        .iter()
        .map(|(_, bytes)| common::json(bytes))
        .collect()
});

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_resource(&bytes, FhirFormat::Json);
        let _ = parse_resource(&bytes, FhirFormat::Xml);
    }

    #[test]
    fn random_xml_like_text_never_panics(text in "(<[a-zA-Z/!?]{0,3}[ a-z=\"]{0,8}>|[a-z&;#0-9 ]{0,5}){0,40}") {
        let body = format!("<Patient xmlns=\"http://hl7.org/fhir\">{text}</Patient>");
        let _ = parse_resource(body.as_bytes(), FhirFormat::Xml);
        let _ = parse_resource(text.as_bytes(), FhirFormat::Xml);
    }

    #[test]
    fn mutated_examples_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<usize>(), mutation()), 1..4),
    ) {
        let mut value = EXAMPLES[pick.index(EXAMPLES.len())].clone();
        for (at, m) in &edits {
            let mut at = at % 200;
            mutate(&mut value, &mut at, m);
        }
        let _ = validate_resource(&value);
        let _ = to_xml_string(&value, true);
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        if let Ok(parsed) = parse_resource(&bytes, FhirFormat::Json) {
            let _ = validate_resource(&parsed);
            if let Ok(xml) = to_xml_string(&parsed, false) {
                let _ = parse_resource(xml.as_bytes(), FhirFormat::Xml);
            }
        }
    }
}

#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    for depth in [1, 20, 40, 45, 46, 47, 60, 200] {
        let mut ext = json!({"url": "u", "valueString": "x"});
        for _ in 0..depth {
            ext = json!({"url": "u", "extension": [ext]});
        }
        let body = serde_json::to_vec(&json!({"resourceType": "Patient", "extension": [ext]}))
            .unwrap_or_default();
        let from_json = parse_resource(&body, FhirFormat::Json);
        let mut xml = String::from("<Patient xmlns=\"http://hl7.org/fhir\">");
        xml.push_str(&"<extension url=\"u\">".repeat(depth + 1));
        xml.push_str("<valueString value=\"x\"/>");
        xml.push_str(&"</extension>".repeat(depth + 1));
        xml.push_str("</Patient>");
        let from_xml = parse_resource(xml.as_bytes(), FhirFormat::Xml);
        if depth <= 40 {
            assert!(
                from_json.is_ok() && from_xml.is_ok(),
                "depth {depth} should be accepted"
            );
            assert_eq!(from_json.as_ref().ok(), from_xml.as_ref().ok());
        }
        if depth >= 60 {
            assert!(
                from_json.is_err() && from_xml.is_err(),
                "depth {depth} should be refused"
            );
        }
    }
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_resource(deep_json.as_bytes(), FhirFormat::Json).is_err());
}
