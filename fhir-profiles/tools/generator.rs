//! Extracts the small tables `fhir-profiles` embeds from the official FHIR R4 4.0.1
//! definitions in `../shared/fhir-r4`, so the crate never carries (or retypes) the
//! multi-megabyte originals. Shared by `tools/generate_data.rs` (writes `data/`) and
//! `tests/data_is_fresh.rs` (checks `data/` still matches the sources).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde_json::{json, Map, Value};

/// Types whose StructureDefinition snapshots and required bindings are extracted.
pub const PROFILED: &[&str] = &[
    "DocumentReference",
    "Consent",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Binary",
    "AuditEvent",
];

/// Primitive type names, longest first, to recognise inline `valueX` patterns in the schema.
const PRIMITIVES_LONGEST_FIRST: &[&str] = &[
    "base64Binary",
    "unsignedInt",
    "positiveInt",
    "canonical",
    "markdown",
    "dateTime",
    "instant",
    "integer",
    "boolean",
    "decimal",
    "string",
    "code",
    "date",
    "time",
    "uuid",
    "oid",
    "uri",
    "url",
    "id",
];

type Result<T> = std::result::Result<T, String>;

/// One generated file: its name under `data/` and its full text.
pub struct Generated {
    pub name: &'static str,
    pub text: String,
}

/// Builds every file of `data/` from the reference data directory (`.../shared/fhir-r4`).
pub fn generate(fhir_r4: &Path) -> Result<Vec<Generated>> {
    let schema = read_json(&fhir_r4.join("fhir.schema.json"))?;
    let terminology = Terminology::load(&fhir_r4.join("terminology"))?;
    let mut profiles = Vec::new();
    for name in PROFILED {
        let file = format!("structuredefinitions/r4-core/StructureDefinition-{name}.json");
        profiles.push((*name, read_json(&fhir_r4.join(file))?));
    }
    Ok(vec![
        Generated {
            name: "resource-types.txt",
            text: resource_types(&terminology, &schema)?,
        },
        Generated {
            name: "elements.json",
            text: elements(&schema)?,
        },
        Generated {
            name: "profiles.json",
            text: profile_tables(&profiles)?,
        },
        Generated {
            name: "valuesets.json",
            text: value_sets(&profiles, &terminology, &schema)?,
        },
    ])
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn definitions(schema: &Value) -> Result<&Map<String, Value>> {
    schema["definitions"]
        .as_object()
        .ok_or_else(|| "fhir.schema.json has no definitions".to_string())
}

/// Concrete R4 resource type names: the codes of CodeSystem resource-types that the schema's
/// ResourceList also names (this drops the abstract `Resource` and `DomainResource`).
fn resource_types(terminology: &Terminology, schema: &Value) -> Result<String> {
    let concrete: BTreeSet<String> = definitions(schema)?["ResourceList"]["oneOf"]
        .as_array()
        .ok_or("ResourceList has no oneOf")?
        .iter()
        .filter_map(|r| r["$ref"].as_str())
        .map(|r| last_segment(r).to_string())
        .collect();
    let system = terminology
        .code_systems
        .get("http://hl7.org/fhir/resource-types")
        .ok_or("CodeSystem resource-types missing")?;
    let mut out = String::new();
    for code in concept_codes(system) {
        if concrete.contains(&code) {
            out.push_str(&code);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Per complex type (and backbone element), its JSON properties with type and arrayness;
/// per primitive type, its JSON kind and pattern.
fn elements(schema: &Value) -> Result<String> {
    let defs = definitions(schema)?;
    let mut primitives = Map::new();
    let mut types = Vec::new();
    for (name, def) in defs {
        if name == "ResourceList" {
            continue;
        }
        match def.get("properties").and_then(Value::as_object) {
            None => {
                let kind = def["type"].as_str().unwrap_or("string");
                let mut p = Map::new();
                p.insert("json".into(), json!(kind));
                if let Some(pattern) = def["pattern"].as_str() {
                    p.insert("pattern".into(), json!(pattern));
                }
                primitives.insert(name.clone(), Value::Object(p));
            }
            Some(props) => {
                let mut out = Map::new();
                for (prop, spec) in props {
                    if spec.get("const").is_some() {
                        continue; // resourceType, checked by the walker itself
                    }
                    out.insert(prop.clone(), property(name, prop, spec, &mut primitives)?);
                }
                let required: Vec<Value> = def["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| r.as_str() != Some("resourceType"))
                    .cloned()
                    .collect();
                let mut t = Map::new();
                t.insert("props".into(), Value::Object(out));
                if !required.is_empty() {
                    t.insert("required".into(), Value::Array(required));
                }
                types.push((name.clone(), Value::Object(t)));
            }
        }
    }
    let mut text = String::from("{\"primitives\":");
    text.push_str(&serde_json::to_string(&primitives).map_err(|e| e.to_string())?);
    text.push_str(",\n\"types\":{\n");
    for (i, (name, t)) in types.iter().enumerate() {
        if i > 0 {
            text.push_str(",\n");
        }
        text.push_str(&format!(
            "{}:{}",
            json!(name),
            serde_json::to_string(t).map_err(|e| e.to_string())?
        ));
    }
    text.push_str("\n}}\n");
    Ok(text)
}

fn property(
    owner: &str,
    prop: &str,
    spec: &Value,
    primitives: &mut Map<String, Value>,
) -> Result<Value> {
    let (item, array) = match spec.get("items") {
        Some(items) => (items, true),
        None => (spec, false),
    };
    let mut out = Map::new();
    if let Some(r) = item["$ref"].as_str() {
        let t = match last_segment(r) {
            "ResourceList" => "Resource",
            other => other,
        };
        out.insert("t".into(), json!(t));
    } else if let Some(values) = item.get("enum") {
        out.insert("t".into(), json!("code"));
        out.insert("e".into(), values.clone());
    } else if let Some(pattern) = item["pattern"].as_str() {
        let t = PRIMITIVES_LONGEST_FIRST
            .iter()
            .find(|p| prop.ends_with(&capitalise(p)))
            .ok_or_else(|| format!("{owner}.{prop}: inline pattern of unknown type"))?;
        // base64Binary has no pattern of its own; the inline one is the official grammar.
        if let Some(Value::Object(p)) = primitives.get_mut(*t) {
            p.entry("pattern").or_insert_with(|| json!(pattern));
        }
        out.insert("t".into(), json!(t));
    } else {
        return Err(format!(
            "{owner}.{prop}: unsupported schema property {spec}"
        ));
    }
    if array {
        out.insert("a".into(), json!(true));
    }
    Ok(Value::Object(out))
}

/// Trimmed snapshots: path, cardinality, isSummary, types with target types, required binding,
/// contentReference.
fn profile_tables(profiles: &[(&str, Value)]) -> Result<String> {
    let mut text = String::from("{\n");
    for (i, (name, sd)) in profiles.iter().enumerate() {
        let elements = sd["snapshot"]["element"]
            .as_array()
            .ok_or_else(|| format!("{name}: no snapshot"))?;
        text.push_str(&format!("{}:[\n", json!(name)));
        let mut first = true;
        for e in elements.iter().skip(1) {
            if !first {
                text.push_str(",\n");
            }
            first = false;
            text.push_str(&serde_json::to_string(&element(e)?).map_err(|e| e.to_string())?);
        }
        text.push_str("\n]");
        text.push_str(if i + 1 < profiles.len() { ",\n" } else { "\n" });
    }
    text.push_str("}\n");
    Ok(text)
}

fn element(e: &Value) -> Result<Value> {
    let path = e["path"].as_str().ok_or("element without path")?;
    let mut out = Map::new();
    out.insert("path".into(), json!(path));
    out.insert("min".into(), e["min"].clone());
    out.insert("max".into(), e["max"].clone());
    if e["isSummary"].as_bool() == Some(true) {
        out.insert("summary".into(), json!(true));
    }
    let mut types = Vec::new();
    for t in e["type"].as_array().into_iter().flatten() {
        let code = fhir_type_code(t).ok_or_else(|| format!("{path}: type without code"))?;
        let mut tt = Map::new();
        tt.insert("code".into(), json!(code));
        let targets: Vec<Value> = t["targetProfile"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|p| json!(last_segment(p)))
            .collect();
        if !targets.is_empty() {
            tt.insert("targets".into(), Value::Array(targets));
        }
        types.push(Value::Object(tt));
    }
    if !types.is_empty() {
        out.insert("types".into(), Value::Array(types));
    }
    if e["binding"]["strength"].as_str() == Some("required") {
        if let Some(vs) = e["binding"]["valueSet"].as_str() {
            out.insert("binding".into(), json!(strip_version(vs)));
        }
    }
    if let Some(cr) = e["contentReference"].as_str() {
        out.insert("contentReference".into(), json!(cr.trim_start_matches('#')));
    }
    Ok(Value::Object(out))
}

/// The FHIR type of an element type; `System.String` ids carry theirs in an extension.
fn fhir_type_code(t: &Value) -> Option<String> {
    let code = t["code"].as_str()?;
    if !code.starts_with("http://hl7.org/fhirpath/") {
        return Some(code.to_string());
    }
    t["extension"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| {
            x["url"].as_str()
                == Some("http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type")
        })
        .and_then(|x| x["valueUrl"].as_str())
        .map(str::to_string)
        .or_else(|| Some(code.to_string()))
}

/// Expansions of every value set bound `required` in the profiled types: from terminology/
/// where the ValueSet and its CodeSystems are complete there, else from the `enum` that
/// fhir.schema.json carries for that element, else listed as unavailable.
fn value_sets(
    profiles: &[(&str, Value)],
    terminology: &Terminology,
    schema: &Value,
) -> Result<String> {
    let mut bound: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, sd) in profiles {
        for e in sd["snapshot"]["element"].as_array().into_iter().flatten() {
            if e["binding"]["strength"].as_str() != Some("required") {
                continue;
            }
            if let (Some(vs), Some(path)) = (e["binding"]["valueSet"].as_str(), e["path"].as_str())
            {
                bound
                    .entry(strip_version(vs).to_string())
                    .or_default()
                    .push(path.to_string());
            }
        }
    }
    let mut expansions = Map::new();
    let mut unavailable = Map::new();
    for (url, paths) in &bound {
        match terminology.expand(url, 0) {
            Ok(codes) => {
                let codes: Vec<Value> = codes
                    .into_iter()
                    .map(|(system, code)| json!({"system": system, "code": code}))
                    .collect();
                expansions.insert(
                    url.clone(),
                    json!({"source": "terminology", "codes": codes}),
                );
            }
            Err(why) => match schema_enum(schema, &paths[0])? {
                Some(values) => {
                    let codes: Vec<Value> = values.iter().map(|c| json!({"code": c})).collect();
                    expansions.insert(
                        url.clone(),
                        json!({"source": format!("fhir.schema.json enum of {}", paths[0]), "codes": codes}),
                    );
                }
                None => {
                    unavailable.insert(url.clone(), json!(why));
                }
            },
        }
    }
    let mut text = String::from("{\"expansions\":{\n");
    for (i, (url, exp)) in expansions.iter().enumerate() {
        if i > 0 {
            text.push_str(",\n");
        }
        text.push_str(&format!(
            "{}:{}",
            json!(url),
            serde_json::to_string(exp).map_err(|e| e.to_string())?
        ));
    }
    text.push_str("\n},\n\"unavailable\":");
    text.push_str(&serde_json::to_string(&unavailable).map_err(|e| e.to_string())?);
    text.push_str("}\n");
    Ok(text)
}

/// The schema `enum` of an element path such as `AuditEvent.agent.network.type`, found by
/// following the `$ref`s from the resource definition.
fn schema_enum(schema: &Value, path: &str) -> Result<Option<Vec<String>>> {
    let defs = definitions(schema)?;
    let mut segments = path.split('.');
    let mut def = segments.next().unwrap_or_default().to_string();
    let mut spec = &Value::Null;
    for seg in segments {
        spec = &defs
            .get(&def)
            .ok_or_else(|| format!("schema has no {def} (for {path})"))?["properties"][seg];
        let item = spec.get("items").unwrap_or(spec);
        if let Some(r) = item["$ref"].as_str() {
            def = last_segment(r).to_string();
        }
    }
    let item = spec.get("items").unwrap_or(spec);
    Ok(item["enum"].as_array().map(|values| {
        values
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    }))
}

/// CodeSystems and ValueSets of terminology/, by canonical URL.
struct Terminology {
    code_systems: BTreeMap<String, Value>,
    value_sets: BTreeMap<String, Value>,
}

impl Terminology {
    fn load(dir: &Path) -> Result<Self> {
        let mut code_systems = BTreeMap::new();
        let mut value_sets = BTreeMap::new();
        let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let resource = read_json(&path)?;
            let Some(url) = resource["url"].as_str().map(str::to_string) else {
                continue;
            };
            match resource["resourceType"].as_str() {
                Some("CodeSystem") => {
                    code_systems.insert(url, resource);
                }
                Some("ValueSet") => {
                    value_sets.insert(url, resource);
                }
                _ => {}
            }
        }
        Ok(Terminology {
            code_systems,
            value_sets,
        })
    }

    /// (system, code) pairs of a value set, or why it cannot be expanded from the files here.
    fn expand(&self, url: &str, depth: usize) -> Result<BTreeSet<(String, String)>> {
        if depth > 8 {
            return Err(format!("{url}: value set imports nest too deep"));
        }
        let vs = self
            .value_sets
            .get(url)
            .ok_or_else(|| format!("ValueSet {url} is not in terminology/"))?;
        let compose = &vs["compose"];
        let mut codes = BTreeSet::new();
        for include in compose["include"].as_array().into_iter().flatten() {
            codes.extend(self.expand_include(url, include, depth)?);
        }
        for exclude in compose["exclude"].as_array().into_iter().flatten() {
            for code in self.expand_include(url, exclude, depth)? {
                codes.remove(&code);
            }
        }
        if codes.is_empty() {
            return Err(format!("{url}: expansion is empty"));
        }
        Ok(codes)
    }

    fn expand_include(
        &self,
        url: &str,
        include: &Value,
        depth: usize,
    ) -> Result<BTreeSet<(String, String)>> {
        if include.get("filter").is_some() {
            return Err(format!("{url}: uses filters, which are not evaluated"));
        }
        let mut codes = BTreeSet::new();
        let imported: Vec<&str> = include["valueSet"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for vs in &imported {
            codes.extend(self.expand(strip_version(vs), depth + 1)?);
        }
        let Some(system) = include["system"].as_str() else {
            return Ok(codes);
        };
        if let Some(concepts) = include["concept"].as_array() {
            for c in concepts {
                if let Some(code) = c["code"].as_str() {
                    codes.insert((system.to_string(), code.to_string()));
                }
            }
            return Ok(codes);
        }
        let cs = self
            .code_systems
            .get(system)
            .ok_or_else(|| format!("{url}: CodeSystem {system} is not in terminology/"))?;
        if cs["content"].as_str() != Some("complete") {
            return Err(format!("{url}: CodeSystem {system} is not complete"));
        }
        codes.extend(
            concept_codes(cs)
                .into_iter()
                .map(|c| (system.to_string(), c)),
        );
        Ok(codes)
    }
}

/// Every code of a CodeSystem, including nested concepts.
fn concept_codes(cs: &Value) -> Vec<String> {
    fn walk(concepts: &Value, out: &mut Vec<String>) {
        for c in concepts.as_array().into_iter().flatten() {
            if let Some(code) = c["code"].as_str() {
                out.push(code.to_string());
            }
            walk(&c["concept"], out);
        }
    }
    let mut out = Vec::new();
    walk(&cs["concept"], &mut out);
    out
}

fn last_segment(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

fn strip_version(url: &str) -> &str {
    url.split('|').next().unwrap_or(url)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
