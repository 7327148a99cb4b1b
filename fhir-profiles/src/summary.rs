//! `_summary` and `_elements`: returning part of a resource, marked SUBSETTED.

use std::str::FromStr;

use serde_json::{json, Map, Value};

use crate::defs::elements::elements;
use crate::defs::profiles::{profile, ElementDef};

const SUBSETTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";
const SUBSETTED_CODE: &str = "SUBSETTED";

/// The `_summary` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryMode {
    True,
    Text,
    Data,
    Count,
    False,
}

impl FromStr for SummaryMode {
    type Err = String;

    /// `true`, `text`, `data`, `count` or `false`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "true" => Ok(SummaryMode::True),
            "text" => Ok(SummaryMode::Text),
            "data" => Ok(SummaryMode::Data),
            "count" => Ok(SummaryMode::Count),
            "false" => Ok(SummaryMode::False),
            other => Err(format!(
                "unknown _summary value '{other}'; expected true, text, data, count or false"
            )),
        }
    }
}

/// `_summary`: True keeps only elements marked isSummary in the StructureDefinition (top
/// level; plus id, meta, implicitRules, and mandatory ones); Text keeps text, id, meta and
/// top-level mandatory elements; Data removes text; False is identity. Count concerns search
/// bundles only, so a single resource is returned unchanged. Any subsetting adds meta.tag
/// {system: "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", code: "SUBSETTED"}.
pub fn apply_summary(resource: &Value, mode: SummaryMode) -> Value {
    let Some(obj) = resource.as_object() else {
        return resource.clone();
    };
    let rt = resource_type(obj);
    match mode {
        SummaryMode::False | SummaryMode::Count => resource.clone(),
        SummaryMode::Data => subset(obj, |key| key != "text" && key != "_text"),
        SummaryMode::Text => subset(obj, |key| {
            matches!(key, "id" | "meta" | "text") || is_mandatory(rt, key)
        }),
        SummaryMode::True => subset(obj, |key| {
            matches!(key, "id" | "meta" | "implicitRules" | "_implicitRules")
                || is_mandatory(rt, key)
                || top_level(rt, key).is_some_and(|e| e.summary)
        }),
    }
}

/// `_elements=a,b`: keeps resourceType, id, meta, the listed top-level elements (choice names
/// like `value[x]` given as base name `value` match valueX) and mandatory elements; adds
/// SUBSETTED.
pub fn apply_elements(resource: &Value, elements: &[&str]) -> Value {
    let Some(obj) = resource.as_object() else {
        return resource.clone();
    };
    let rt = resource_type(obj);
    let wanted: Vec<&str> = elements
        .iter()
        .filter_map(|e| e.trim().split('.').next())
        .map(|e| e.trim_end_matches("[x]"))
        .filter(|e| !e.is_empty())
        .collect();
    subset(obj, |key| {
        matches!(key, "id" | "meta") || is_mandatory(rt, key) || is_listed(rt, key, &wanted)
    })
}

fn resource_type(obj: &Map<String, Value>) -> &str {
    obj.get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The snapshot element a top-level JSON property belongs to.
fn top_level(rt: &str, key: &str) -> Option<&'static ElementDef> {
    profile(rt)?.child_for_key(rt, key)
}

/// Mandatory in the snapshot; for types without one, in the schema.
fn is_mandatory(rt: &str, key: &str) -> bool {
    if profile(rt).is_some() {
        return top_level(rt, key).is_some_and(|e| e.min >= 1);
    }
    let base = key.strip_prefix('_').unwrap_or(key);
    elements()
        .complex(rt)
        .is_some_and(|t| t.required.iter().any(|r| r == base))
}

fn is_listed(rt: &str, key: &str, wanted: &[&str]) -> bool {
    let base = key.strip_prefix('_').unwrap_or(key);
    if wanted.contains(&base) {
        return true;
    }
    // Looked up once per key, not once per name asked for: `_elements` may
    // list thousands of names.
    let element = top_level(rt, key);
    wanted.iter().any(|w| {
        match element {
            Some(e) => e.choice_base() == Some(*w),
            // Without a snapshot: `value` matches `valueQuantity`.
            None => base
                .strip_prefix(*w)
                .and_then(|rest| rest.chars().next())
                .is_some_and(char::is_uppercase),
        }
    })
}

/// Copies the kept properties, resourceType/id/meta first, with the SUBSETTED tag added.
fn subset(obj: &Map<String, Value>, keep: impl Fn(&str) -> bool) -> Value {
    let mut out = Map::new();
    for key in ["resourceType", "id"] {
        if let Some(v) = obj.get(key) {
            out.insert(key.to_string(), v.clone());
        }
    }
    let mut meta = match obj.get("meta") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    add_subsetted_tag(&mut meta);
    out.insert("meta".into(), Value::Object(meta));
    for (key, value) in obj {
        if matches!(key.as_str(), "resourceType" | "id" | "meta") || !keep(key) {
            continue;
        }
        out.insert(key.clone(), value.clone());
    }
    Value::Object(out)
}

fn add_subsetted_tag(meta: &mut Map<String, Value>) {
    let tags = meta.entry("tag").or_insert_with(|| json!([]));
    if !tags.is_array() {
        *tags = json!([]);
    }
    if let Value::Array(tags) = tags {
        let present = tags.iter().any(|t| {
            t.get("system").and_then(Value::as_str) == Some(SUBSETTED_SYSTEM)
                && t.get("code").and_then(Value::as_str) == Some(SUBSETTED_CODE)
        });
        if !present {
            tags.push(json!({"system": SUBSETTED_SYSTEM, "code": SUBSETTED_CODE}));
        }
    }
}
