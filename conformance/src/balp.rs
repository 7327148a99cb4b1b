//! Checks AuditEvents against the IHE BALP profiles they claim, read from
//! the profiles' own FHIR Shorthand (`../shared/balp/*.fsh`) rather than
//! retyped: the subset of FSH those profiles use — fixed values, cardinalities,
//! slices by value (`contains`, `^slicing.discriminator.path`), required
//! bindings to the value sets defined there, `only Reference(…)` — applied
//! the way a FHIR validator applies them. Also validates any resource against
//! the official R4 JSON schema (`../shared/fhir-r4/fhir.schema.json`) with
//! the `jsonschema` crate, an implementation that is not ours.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;

/// `../shared` from the workspace.
fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// The official R4 JSON schema's verdict on `resource`: every error, empty when valid.
pub fn schema_errors(resource: &Value) -> Vec<String> {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let text = std::fs::read_to_string(shared().join("fhir-r4/fhir.schema.json"))
            .expect("../shared/fhir-r4/fhir.schema.json is readable");
        let schema: Value = serde_json::from_str(&text).expect("the R4 schema is JSON");
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft6)
            .build(&schema)
            .expect("the R4 schema compiles")
    });
    validator
        .iter_errors(resource)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Asserts that `event` is valid R4 (the official schema) and follows every
/// BALP profile it claims in `meta.profile`; `what` names it in the failure.
#[track_caller]
pub fn assert_valid_audit_event(event: &Value, what: &str) {
    let errors = schema_errors(event);
    assert!(
        errors.is_empty(),
        "{what}: not valid R4: {errors:#?}\n{event:#}"
    );
    for profile in event["meta"]["profile"].as_array().into_iter().flatten() {
        let profile = profile.as_str().unwrap_or_default();
        let violations = balp().violations(event, profile);
        assert!(
            violations.is_empty(),
            "{what}: breaks {profile}: {violations:#?}\n{event:#}"
        );
    }
}

/// The AuditEvents the shared test server recorded for request `request_id`
/// (its `X-Request-Id`), oldest first, each asserted valid R4 and faithful to
/// the BALP profile it claims.
#[track_caller]
pub fn recorded_events(request_id: &str) -> Vec<Value> {
    events_with(&format!("entity:identifier=|{request_id}"))
}

/// The AuditEvents of the shared test server's trail that carry the search
/// term `term` (`param=value`, see `fhirledger_audit::terms`), oldest first,
/// each asserted valid R4 and faithful to the BALP profile it claims.
#[track_caller]
pub fn events_with(term: &str) -> Vec<Value> {
    static STORE: OnceLock<fhirledger_postgres::PgStore> = OnceLock::new();
    let store = STORE.get_or_init(|| {
        fhirledger_postgres::PgStore::connect(
            &crate::server().database_url,
            &fhirledger_postgres::PoolConfig::default(),
        )
        .expect("a pool on the test server's database")
    });
    let events: Vec<Value> = store
        .audit_events_with(term)
        .expect("the trail")
        .iter()
        .map(|c| serde_json::from_str(c).expect("stored JSON"))
        .collect();
    for event in &events {
        assert_valid_audit_event(event, term);
    }
    events
}

/// The entities of an AuditEvent with `entity.role` code `role` (`1` the
/// patient, `4` a resource, `24` the query).
pub fn entities(event: &Value, role: &str) -> Vec<Value> {
    event["entity"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["role"]["code"] == role)
        .cloned()
        .collect()
}

/// The references (`what.reference`) of the entities with `role`.
pub fn entity_refs(event: &Value, role: &str) -> Vec<String> {
    entities(event, role)
        .iter()
        .filter_map(|e| e["what"]["reference"].as_str().map(str::to_string))
        .collect()
}

/// The request a query AuditEvent keeps: its query entity's (role 24)
/// base64 `query`, decoded.
pub fn recorded_query(event: &Value) -> Option<String> {
    use base64::Engine;
    let query = event["entity"]
        .as_array()?
        .iter()
        .find(|e| e["role"]["code"] == "24")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(query["query"].as_str()?)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// A fixed value: a code (with its system when FSH names one) or a boolean.
#[derive(Debug, Clone, PartialEq)]
enum Fixed {
    Code {
        system: Option<String>,
        code: String,
    },
    Bool(bool),
}

#[derive(Debug, Clone)]
enum RuleKind {
    Fixed(Fixed),
    Cardinality { min: usize, max: Option<usize> },
    From(String),
    OnlyReference(Vec<String>),
    Contains(Vec<(String, usize, Option<usize>)>),
}

#[derive(Debug, Clone)]
struct Rule {
    path: String,
    kind: RuleKind,
}

#[derive(Debug, Clone, Default)]
struct Profile {
    parent: Option<String>,
    rules: Vec<Rule>,
    /// Element path → discriminator path of its slices.
    discriminators: HashMap<String, String>,
}

/// The BALP profiles, value sets and code systems, parsed once.
pub struct Balp {
    /// By name and by id.
    profiles: HashMap<String, Profile>,
    ids: HashMap<String, String>,
    value_sets: HashMap<String, Vec<Fixed>>,
    /// Name of a CodeSystem or alias → its URL.
    systems: HashMap<String, String>,
}

/// The profiles of `../shared/balp`.
pub fn balp() -> &'static Balp {
    static BALP: OnceLock<Balp> = OnceLock::new();
    BALP.get_or_init(|| {
        let dir = shared().join("balp");
        let mut text = String::new();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("../shared/balp is readable")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "fsh"))
            .collect();
        files.sort();
        for f in files {
            text.push_str(&std::fs::read_to_string(f).expect("an FSH file is readable"));
            text.push('\n');
        }
        Balp::parse(&text)
    })
}

/// `line` without its `//` comment (a `//` inside a URL is kept).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for i in 0..bytes.len().saturating_sub(1) {
        if bytes[i] == b'/'
            && bytes[i + 1] == b'/'
            && (i == 0 || bytes[i - 1].is_ascii_whitespace())
        {
            return &line[..i];
        }
    }
    line
}

fn cardinality(s: &str) -> Option<(usize, Option<usize>)> {
    let (min, max) = s.split_once("..")?;
    let min = min.parse().ok()?;
    let max = match max {
        "" | "*" => None,
        m => Some(m.parse().ok()?),
    };
    Some((min, max))
}

impl Balp {
    fn parse(text: &str) -> Balp {
        // Statements: keyword lines and `*` rules, with continuation lines joined
        // and triple-quoted descriptions dropped.
        let mut statements: Vec<String> = Vec::new();
        let mut in_quotes = false;
        for raw in text.lines() {
            if in_quotes {
                if raw.contains("\"\"\"") {
                    in_quotes = false;
                }
                continue;
            }
            if raw.matches("\"\"\"").count() == 1 {
                in_quotes = true;
                continue;
            }
            let line = strip_comment(raw).trim_end();
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            let starts_statement = trimmed.starts_with('*')
                || trimmed.split_once(':').is_some_and(|(k, _)| {
                    !k.contains(' ') && k.chars().all(|c| c.is_ascii_alphabetic())
                });
            match statements.last_mut() {
                Some(last) if !starts_statement && last.starts_with('*') => {
                    last.push(' ');
                    last.push_str(trimmed);
                }
                _ => statements.push(trimmed.to_string()),
            }
        }
        let mut balp = Balp {
            profiles: HashMap::new(),
            ids: HashMap::new(),
            value_sets: HashMap::new(),
            systems: HashMap::new(),
        };
        enum Block {
            Profile(String),
            ValueSet(String),
            Other,
        }
        let mut block = Block::Other;
        let mut pending_codesystem: Option<String> = None;
        let mut raw_rules: Vec<(String, String)> = Vec::new();
        for s in &statements {
            if let Some(rule) = s.strip_prefix('*') {
                match &block {
                    Block::Profile(name) | Block::ValueSet(name) => {
                        raw_rules.push((name.clone(), rule.trim().to_string()))
                    }
                    Block::Other => {}
                }
                continue;
            }
            let Some((key, value)) = s.split_once(':') else {
                continue;
            };
            let value = value.trim().to_string();
            match key {
                "Profile" => {
                    balp.profiles.insert(value.clone(), Profile::default());
                    block = Block::Profile(value);
                }
                "ValueSet" => {
                    balp.value_sets.insert(value.clone(), Vec::new());
                    block = Block::ValueSet(value);
                }
                "CodeSystem" => {
                    balp.systems.insert(
                        value.clone(),
                        format!("https://profiles.ihe.net/ITI/BALP/CodeSystem/{value}"),
                    );
                    pending_codesystem = Some(value);
                    block = Block::Other;
                }
                "Alias" => {
                    if let Some((name, url)) = value.split_once('=') {
                        balp.systems.insert(name.trim().into(), url.trim().into());
                    }
                }
                "Parent" => {
                    if let Block::Profile(name) = &block {
                        if let Some(p) = balp.profiles.get_mut(name) {
                            p.parent = Some(value);
                        }
                    }
                }
                "Id" => {
                    if let Block::Profile(name) = &block {
                        balp.ids.insert(value, name.clone());
                    } else if let Some(cs) = pending_codesystem.take() {
                        balp.systems.insert(
                            cs,
                            format!("https://profiles.ihe.net/ITI/BALP/CodeSystem/{value}"),
                        );
                    }
                }
                _ if !matches!(key, "Title" | "Description") => block = Block::Other,
                _ => {}
            }
        }
        for (owner, rule) in raw_rules {
            if let Some(vs) = balp.value_sets.get_mut(&owner) {
                if let Some(system) = rule.strip_prefix("codes from system ") {
                    let system = balp
                        .systems
                        .get(system.trim())
                        .cloned()
                        .unwrap_or(system.trim().into());
                    vs.push(Fixed::Code {
                        system: Some(system),
                        code: "*".into(),
                    });
                } else if !rule.starts_with('^') {
                    let fixed =
                        parse_fixed(rule.split_whitespace().next().unwrap_or(""), &balp.systems);
                    balp.value_sets
                        .get_mut(&owner)
                        .into_iter()
                        .for_each(|v| v.push(fixed.clone()));
                }
                continue;
            }
            let systems = balp.systems.clone();
            let Some(profile) = balp.profiles.get_mut(&owner) else {
                continue;
            };
            parse_rule(&rule, &systems, profile);
        }
        balp
    }

    /// Every way `event` breaks the profile with canonical URL `profile`.
    pub fn violations(&self, event: &Value, profile: &str) -> Vec<String> {
        let id = profile.rsplit('/').next().unwrap_or(profile);
        let Some(name) = self.ids.get(id) else {
            return vec![format!("no BALP profile with id {id}")];
        };
        let mut chain = Vec::new();
        let mut at = Some(name.clone());
        while let Some(n) = at {
            let Some(p) = self.profiles.get(&n) else {
                break;
            };
            chain.push(p);
            at = p.parent.clone();
        }
        chain.reverse();
        let mut merged = Profile::default();
        for p in chain {
            merged.rules.extend(p.rules.iter().cloned());
            merged.discriminators.extend(p.discriminators.clone());
        }
        let mut out = Vec::new();
        for rule in &merged.rules {
            self.check(event, &merged, rule, &mut out);
        }
        out
    }

    fn check(&self, event: &Value, profile: &Profile, rule: &Rule, out: &mut Vec<String>) {
        let (parent_path, last) = match rule.path.rsplit_once('.') {
            Some((p, l)) => (Some(p), l),
            None => (None, rule.path.as_str()),
        };
        let parents = match parent_path {
            Some(p) => self.select(event, profile, p),
            None => vec![event],
        };
        for parent in parents {
            let values = self.select(parent, profile, last);
            match &rule.kind {
                RuleKind::Cardinality { min, max } => {
                    let n = values.len();
                    if n < *min || max.is_some_and(|m| n > m) {
                        out.push(format!(
                            "{}: {n} value(s), wants {min}..{}",
                            rule.path,
                            max.map(|m| m.to_string()).unwrap_or("*".into())
                        ));
                    }
                }
                RuleKind::Fixed(fixed) => {
                    for v in values {
                        if !matches_fixed(v, fixed) {
                            out.push(format!("{}: {v} is not {fixed:?}", rule.path));
                        }
                    }
                }
                RuleKind::From(vs) => {
                    let codes = self.value_sets.get(vs).cloned().unwrap_or_default();
                    for v in values {
                        if !codes.iter().any(|c| matches_fixed(v, c)) {
                            out.push(format!("{}: {v} is not in {vs}", rule.path));
                        }
                    }
                }
                RuleKind::OnlyReference(types) => {
                    for v in values {
                        let r = v["reference"].as_str().unwrap_or_default();
                        if !types.iter().any(|t| r.starts_with(&format!("{t}/"))) {
                            out.push(format!(
                                "{}: {v} is not a Reference({})",
                                rule.path,
                                types.join("|")
                            ));
                        }
                    }
                }
                RuleKind::Contains(slices) => {
                    for (slice, min, max) in slices {
                        let n = self
                            .select(parent, profile, &format!("{last}[{slice}]"))
                            .len();
                        if n < *min || max.is_some_and(|m| n > m) {
                            out.push(format!(
                                "{}[{slice}]: {n} element(s), wants {min}..{}",
                                rule.path,
                                max.map(|m| m.to_string()).unwrap_or("*".into())
                            ));
                        }
                    }
                }
            }
        }
    }

    /// The values at `path` under `node` (arrays flattened), slices filtered.
    fn select<'a>(&self, node: &'a Value, profile: &Profile, path: &str) -> Vec<&'a Value> {
        let mut current = vec![node];
        let mut walked = String::new();
        for segment in path.split('.') {
            let (name, slice) = match segment.split_once('[') {
                Some((n, s)) => (n, Some(s.trim_end_matches(']'))),
                None => (segment, None),
            };
            if !walked.is_empty() {
                walked.push('.');
            }
            walked.push_str(name);
            let mut next = Vec::new();
            for v in current {
                match &v[name] {
                    Value::Null => {}
                    Value::Array(items) => next.extend(items.iter()),
                    other => next.push(other),
                }
            }
            if let Some(slice) = slice {
                next.retain(|e| self.in_slice(e, profile, &walked, slice));
                walked.push_str(&format!("[{slice}]"));
            }
            current = next;
        }
        current
    }

    fn in_slice(&self, element: &Value, profile: &Profile, array_path: &str, slice: &str) -> bool {
        let disc = profile
            .discriminators
            .get(array_path)
            .map(String::as_str)
            .unwrap_or("type");
        let defining = if disc == "$this" {
            format!("{array_path}[{slice}]")
        } else {
            format!("{array_path}[{slice}].{disc}")
        };
        let values: Vec<&Value> = if disc == "$this" {
            vec![element]
        } else {
            self.select(element, profile, disc)
        };
        let mut defined = false;
        for rule in profile.rules.iter().filter(|r| r.path == defining) {
            match &rule.kind {
                RuleKind::Fixed(f) => {
                    defined = true;
                    if !values.iter().any(|v| matches_fixed(v, f)) {
                        return false;
                    }
                }
                RuleKind::From(vs) => {
                    defined = true;
                    let codes = self.value_sets.get(vs).cloned().unwrap_or_default();
                    if !values
                        .iter()
                        .any(|v| codes.iter().any(|c| matches_fixed(v, c)))
                    {
                        return false;
                    }
                }
                _ => {}
            }
        }
        defined
    }
}

fn parse_fixed(value: &str, systems: &HashMap<String, String>) -> Fixed {
    let value = value.trim();
    match value {
        "true" => return Fixed::Bool(true),
        "false" => return Fixed::Bool(false),
        _ => {}
    }
    let (system, code) = match value.rsplit_once('#') {
        Some((s, c)) => (s, c),
        None => ("", value),
    };
    let code = code
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_matches('"');
    let system = match system {
        "" => None,
        s => Some(systems.get(s).cloned().unwrap_or_else(|| s.to_string())),
    };
    Fixed::Code {
        system,
        code: code.to_string(),
    }
}

fn parse_rule(rule: &str, systems: &HashMap<String, String>, profile: &mut Profile) {
    let Some((path, rest)) = rule.split_once(' ') else {
        return;
    };
    let rest = rest.trim();
    if let Some(meta) = rest.strip_prefix('^') {
        if let Some(value) = meta.strip_prefix("slicing.discriminator.path = ") {
            profile
                .discriminators
                .insert(path.to_string(), value.trim().trim_matches('"').to_string());
        }
        return;
    }
    let kind = if let Some(items) = rest.strip_prefix("contains ") {
        let slices = items
            .split(" and ")
            .filter_map(|item| {
                let mut words = item.split_whitespace();
                let name = words.next()?;
                let (min, max) = cardinality(words.next()?)?;
                Some((name.to_string(), min, max))
            })
            .collect();
        RuleKind::Contains(slices)
    } else if let Some(vs) = rest.strip_prefix("from ") {
        RuleKind::From(vs.split_whitespace().next().unwrap_or_default().to_string())
    } else if let Some(types) = rest.strip_prefix("only Reference(") {
        RuleKind::OnlyReference(
            types
                .trim_end_matches(')')
                .split(" or ")
                .map(|t| t.trim().to_string())
                .collect(),
        )
    } else if let Some(value) = rest.strip_prefix("= ") {
        RuleKind::Fixed(parse_fixed(value, systems))
    } else if let Some((min, max)) = rest.split_whitespace().next().and_then(cardinality) {
        RuleKind::Cardinality { min, max }
    } else {
        return;
    };
    profile.rules.push(Rule {
        path: path.to_string(),
        kind,
    });
}

/// Whether a JSON value (a code, a Coding, a CodeableConcept or a boolean)
/// carries the fixed value.
fn matches_fixed(v: &Value, fixed: &Fixed) -> bool {
    match fixed {
        Fixed::Bool(b) => v.as_bool() == Some(*b),
        Fixed::Code { system, code } => {
            if let Some(codings) = v["coding"].as_array() {
                return codings.iter().any(|c| matches_fixed(c, fixed));
            }
            if let Some(s) = v.as_str() {
                return s == code;
            }
            let code_ok = code == "*" || v["code"].as_str() == Some(code.as_str());
            let system_ok = match system {
                Some(s) => v["system"].as_str() == Some(s.as_str()),
                None => true,
            };
            code_ok && system_ok
        }
    }
}
