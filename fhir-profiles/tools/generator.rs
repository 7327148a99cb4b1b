//! Extracts the small tables `fhir-profiles` embeds from the official FHIR R4 4.0.1
//! definitions in `../shared/fhir-r4`, so the crate never carries (or retypes) the
//! multi-megabyte originals. Shared by `tools/generate_data.rs` (writes `data/`) and
//! `tests/data_is_fresh.rs` (checks `data/` still matches the sources).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde_json::{json, Map, Value};

/// Types whose StructureDefinition snapshots and required bindings are extracted: the
/// hosted ones.
pub const PROFILED: &[&str] = fhir_profiles::resource_types::HOSTED;

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
    let search_parameters = read_json(&fhir_r4.join("search-parameters.json"))?;
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
        Generated {
            name: "search-parameters.json",
            text: search_params(&search_parameters)?,
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

/// Value sets R4 binds extensible or by example that this server binds `required`.
const SERVER_BOUND: &[(&str, &str)] = &[
    (
        "http://hl7.org/fhir/ValueSet/consent-scope",
        "Consent.scope",
    ),
    (
        "http://hl7.org/fhir/ValueSet/consent-action",
        "Consent.provision.action",
    ),
];

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
    // This server binds these `required` too (fhir-profiles/src/validate/rules.rs).
    for (url, path) in SERVER_BOUND {
        bound
            .entry(url.to_string())
            .or_default()
            .push(path.to_string());
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

/// Per hosted type, every official search parameter with an expression whose `base` names the
/// type, its expression narrowed to that type's alternatives; plus the `Resource` parameters
/// with an expression (`_id`, `_lastUpdated`, ...), rewritten from `Resource.` to the type.
/// Sorted by type, then code; one parameter per line.
fn search_params(bundle: &Value) -> Result<String> {
    let entries: Vec<&Value> = bundle["entry"]
        .as_array()
        .ok_or("search-parameters.json has no entry")?
        .iter()
        .map(|e| &e["resource"])
        .collect();
    let by_url: BTreeMap<&str, &Value> = entries
        .iter()
        .filter_map(|r| Some((r["url"].as_str()?, *r)))
        .collect();
    let mut types: BTreeMap<&str, BTreeMap<String, Value>> = BTreeMap::new();
    for &t in fhir_profiles::resource_types::HOSTED {
        let params = types.entry(t).or_default();
        for r in &entries {
            let Some(expression) = narrowed_expression(r, t) else {
                continue;
            };
            let code = r["code"].as_str().ok_or("search parameter without code")?;
            let url = r["url"].as_str().ok_or_else(|| format!("{code}: no url"))?;
            let mut out = Map::new();
            out.insert("code".into(), json!(code));
            out.insert("type".into(), r["type"].clone());
            out.insert("url".into(), json!(url));
            out.insert("expression".into(), json!(expression));
            let mut targets = strings(&r["target"]);
            targets.sort_unstable();
            if !targets.is_empty() {
                out.insert("target".into(), json!(targets));
            }
            let components = components(r, t, &expression, &by_url)?;
            if !components.is_empty() {
                out.insert("component".into(), Value::Array(components));
            }
            let description = r["description"].as_str().unwrap_or_default();
            out.insert("description".into(), json!(first_sentence(description, t)));
            if params
                .insert(code.to_string(), Value::Object(out))
                .is_some()
            {
                return Err(format!("{t}: search parameter {code} defined twice"));
            }
        }
    }
    let mut text = String::from("{\n");
    for (i, (t, params)) in types.iter().enumerate() {
        if i > 0 {
            text.push_str(",\n");
        }
        text.push_str(&format!("{}:[\n", json!(t)));
        for (j, p) in params.values().enumerate() {
            if j > 0 {
                text.push_str(",\n");
            }
            text.push_str(&serde_json::to_string(p).map_err(|e| e.to_string())?);
        }
        text.push_str("\n]");
    }
    text.push_str("\n}\n");
    Ok(text)
}

/// The expression of search parameter `r` as it applies to type `t`: `Resource.` rewritten to
/// `t.` for the Resource-level parameters; for the others, the top-level ` | ` alternatives
/// that start with `t.` or `(t.`. `None` when `r` does not apply to `t` or has no expression.
fn narrowed_expression(r: &Value, t: &str) -> Option<String> {
    let expression = r["expression"].as_str()?;
    let bases = strings(&r["base"]);
    let (from, to) = if bases.iter().any(|b| b == "Resource") {
        ("Resource", t)
    } else if bases.iter().any(|b| b == t) {
        (t, t)
    } else {
        return None;
    };
    let parts: Vec<String> = split_union(expression)
        .into_iter()
        .filter_map(|part| {
            let (open, rest) = match part.strip_prefix('(') {
                Some(rest) => ("(", rest),
                None => ("", part),
            };
            let path = rest.strip_prefix(from)?.strip_prefix('.')?;
            Some(format!("{open}{to}.{path}"))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" | "))
}

/// The top-level ` | ` alternatives of a FHIRPath expression (outside parentheses and quotes).
fn split_union(expression: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0usize, false, 0usize);
    let bytes = expression.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'\'' => quoted = !quoted,
            b'(' if !quoted => depth += 1,
            b')' if !quoted => depth = depth.saturating_sub(1),
            b' ' if !quoted && depth == 0 && expression[i..].starts_with(" | ") => {
                parts.push(expression[start..i].trim());
                i += 3;
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(expression[start..].trim());
    parts
}

/// The components of a composite parameter: the code of the parameter each is searched like
/// (from its `definition` URL) and its expression. R4 swaps the definitions of
/// DocumentReference `relationship` (`code` is defined as `relatesto`, `target` as `relation`):
/// a component whose full path is exactly another component definition's expression takes
/// that definition's code.
fn components(
    r: &Value,
    t: &str,
    expression: &str,
    by_url: &BTreeMap<&str, &Value>,
) -> Result<Vec<Value>> {
    let code = r["code"].as_str().unwrap_or_default();
    let mut defs = Vec::new();
    for c in r["component"].as_array().into_iter().flatten() {
        let url = c["definition"]
            .as_str()
            .ok_or_else(|| format!("{t}.{code}: component without definition"))?;
        let def = by_url
            .get(strip_version(url))
            .ok_or_else(|| format!("{t}.{code}: component {url} is not defined"))?;
        let def_code = def["code"]
            .as_str()
            .ok_or_else(|| format!("{url}: no code"))?;
        let sub = c["expression"]
            .as_str()
            .ok_or_else(|| format!("{t}.{code}: component without expression"))?;
        defs.push((def_code, narrowed_expression(def, t), sub));
    }
    Ok(defs
        .iter()
        .map(|(def_code, _, sub)| {
            let full = format!("{expression}.{sub}");
            let code = defs
                .iter()
                .find(|(_, e, _)| e.as_deref() == Some(full.as_str()))
                .map_or(*def_code, |(c, _, _)| *c);
            json!({"code": code, "expression": sub})
        })
        .collect())
}

/// The first sentence of a description; of a "Multiple Resources" one, that of type `t`'s line.
fn first_sentence(description: &str, t: &str) -> String {
    let prefix = format!("* [{t}](");
    let text = description
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(&prefix)
                .and_then(|rest| rest.split_once("): "))
                .map(|(_, d)| d)
        })
        .unwrap_or(description);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    // The first ". " outside parentheses ends the sentence (not the one in "(e.g. ...)").
    let mut depth = 0i32;
    for (i, c) in line.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            '.' if depth == 0 && line[i + 1..].starts_with(' ') => {
                return line[..=i].to_string();
            }
            _ => {}
        }
    }
    line.to_string()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
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
