//! The search parameters of every hosted resource type, generated from the official R4
//! `search-parameters.json` into `data/search-parameters.json` (see data/README.md).

/// The key index rows carry for one parameter of one resource type: a stable 32-bit hash
/// of `"{ResourceType}.{code}"` (or a derived name such as
/// `"DocumentReference.identifier:of-type"`), so it never changes when the registry
/// is regenerated. A test checks that no two keys in use collide.
pub type ParamKey = i32;

/// The key of a parameter or derived index name (`"{ResourceType}.{name}"`).
pub fn param_key(resource_type: &str, name: &str) -> ParamKey {
    // FNV-1a, 32 bits: stable across builds and platforms, unlike std's hasher.
    let mut hash: u32 = 0x811c_9dc5;
    for byte in resource_type
        .bytes()
        .chain(std::iter::once(b'.'))
        .chain(name.bytes())
    {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash as i32
}

/// The R4 search parameter types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamType {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

impl ParamType {
    /// The FHIR `search-param-type` code.
    pub fn code(self) -> &'static str {
        match self {
            ParamType::Number => "number",
            ParamType::Date => "date",
            ParamType::String => "string",
            ParamType::Token => "token",
            ParamType::Reference => "reference",
            ParamType::Composite => "composite",
            ParamType::Quantity => "quantity",
            ParamType::Uri => "uri",
            ParamType::Special => "special",
        }
    }
}

/// One component of a composite parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// The code of the parameter the component is searched like (e.g. `relation`).
    pub code: String,
    /// FHIRPath relative to the composite's own expression (e.g. `code`).
    pub expression: String,
}

/// A search parameter as it applies to one resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParam {
    pub resource_type: String,
    pub code: String,
    pub kind: ParamType,
    /// What index rows of this parameter are stored under.
    pub key: ParamKey,
    /// The canonical URL of the official SearchParameter.
    pub url: String,
    /// The FHIRPath expression, narrowed to this resource type's alternatives.
    pub expression: String,
    /// Resource types a reference parameter may point to.
    pub targets: Vec<String>,
    pub components: Vec<Component>,
    pub description: String,
}

/// The parameter `code` of `resource_type` (including `_id`, `_lastUpdated`, `_tag`,
/// `_security`, `_profile` and `_source`), if this server supports it.
pub fn param(resource_type: &str, code: &str) -> Option<&'static SearchParam> {
    params(resource_type).iter().find(|p| p.code == code)
}

/// Every supported parameter of `resource_type`, sorted by code; empty for types that are
/// not hosted.
pub fn params(resource_type: &str) -> &'static [SearchParam] {
    type_params(resource_type).map_or(&[], |t| t.params.as_slice())
}

// ---------------------------------------------------------------------------------------
// The embedded registry and the compiled expressions kept alongside it.

use std::sync::OnceLock;

use serde::Deserialize;

use crate::resource_types::HOSTED;
use crate::search::fhirpath::{Compiled, Error, FhirType};

/// Generated from the official definitions (see data/README.md).
const SEARCH_PARAMETERS_JSON: &str = include_str!("../../data/search-parameters.json");

/// Whether a token parameter's values include Identifiers, so that `:of-type` applies to it
/// (its rows are under `param_key(type, "{code}:of-type")`, see [`crate::search::query`]).
pub fn identifier_valued(param: &SearchParam) -> bool {
    compiled_param(param).is_some_and(|c| c.of_type_key.is_some())
}

impl ParamType {
    /// The type of a FHIR `search-param-type` code.
    pub fn from_code(code: &str) -> Option<ParamType> {
        Some(match code {
            "number" => ParamType::Number,
            "date" => ParamType::Date,
            "string" => ParamType::String,
            "token" => ParamType::Token,
            "reference" => ParamType::Reference,
            "composite" => ParamType::Composite,
            "quantity" => ParamType::Quantity,
            "uri" => ParamType::Uri,
            "special" => ParamType::Special,
            _ => return None,
        })
    }
}

/// One parameter as compiled for extraction.
#[derive(Debug)]
pub(crate) struct CompiledParam {
    /// An error when the expression is outside the supported subset (the registry tests
    /// check that none is); such a parameter indexes nothing.
    pub(crate) expression: Result<Compiled, Error>,
    pub(crate) components: Vec<CompiledComponent>,
    /// For token parameters whose values may be Identifiers: the key of `:of-type` rows.
    pub(crate) of_type_key: Option<ParamKey>,
    /// For reference parameters: the key of the `Reference.identifier` rows.
    pub(crate) identifier_key: Option<ParamKey>,
}

/// One component of a composite, compiled relative to the composite's own results.
#[derive(Debug)]
pub(crate) struct CompiledComponent {
    /// The type of the parameter the component is searched like.
    pub(crate) kind: Option<ParamType>,
    pub(crate) expression: Result<Compiled, Error>,
}

/// The parameters of one hosted type.
#[derive(Debug)]
pub(crate) struct TypeParams {
    pub(crate) resource_type: FhirType,
    pub(crate) params: Vec<SearchParam>,
    /// Parallel to `params`.
    pub(crate) compiled: Vec<CompiledParam>,
}

#[derive(Debug, Deserialize)]
struct RawParam {
    code: String,
    #[serde(rename = "type")]
    kind: String,
    url: String,
    expression: String,
    #[serde(default)]
    target: Vec<String>,
    #[serde(default)]
    component: Vec<RawComponent>,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
struct RawComponent {
    code: String,
    expression: String,
}

fn registry() -> &'static [TypeParams] {
    static REGISTRY: OnceLock<Vec<TypeParams>> = OnceLock::new();
    REGISTRY.get_or_init(load)
}

/// Loads the embedded table. It is fixed at build time and the tests load it; should it
/// ever be unreadable the registry is empty (searches refuse every parameter, nothing is
/// indexed) rather than a panic.
fn load() -> Vec<TypeParams> {
    let mut raw: std::collections::HashMap<String, Vec<RawParam>> =
        serde_json::from_str(SEARCH_PARAMETERS_JSON).unwrap_or_default();
    HOSTED
        .iter()
        .map(|&t| load_type(t, raw.remove(t).unwrap_or_default()))
        .collect()
}

fn load_type(resource_type: FhirType, raw: Vec<RawParam>) -> TypeParams {
    let mut params: Vec<SearchParam> = raw
        .into_iter()
        .filter_map(|p| {
            Some(SearchParam {
                resource_type: resource_type.to_string(),
                key: param_key(resource_type, &p.code),
                kind: ParamType::from_code(&p.kind)?,
                code: p.code,
                url: p.url,
                expression: p.expression,
                targets: p.target,
                components: p
                    .component
                    .into_iter()
                    .map(|c| Component {
                        code: c.code,
                        expression: c.expression,
                    })
                    .collect(),
                description: p.description,
            })
        })
        .collect();
    params.sort_by(|a, b| a.code.cmp(&b.code));
    let compiled = params.iter().map(|p| compile_param(p, &params)).collect();
    TypeParams {
        resource_type,
        params,
        compiled,
    }
}

fn compile_param(p: &SearchParam, all: &[SearchParam]) -> CompiledParam {
    let t = p.resource_type.as_str();
    let expression = Compiled::new(&p.expression, t);
    let result_types = expression.as_ref().ok().map(Compiled::result_types);
    let components = p
        .components
        .iter()
        .map(|c| CompiledComponent {
            kind: all.iter().find(|q| q.code == c.code).map(|q| q.kind),
            expression: match result_types {
                Some([context]) => Compiled::new(&c.expression, context),
                Some(types) => Err(Error(format!(
                    "a composite over {types:?}: components need one type"
                ))),
                None => Err(Error("the composite's expression did not compile".into())),
            },
        })
        .collect();
    let reaches_identifier = result_types.is_some_and(|types| types.contains(&"Identifier"));
    CompiledParam {
        expression,
        components,
        of_type_key: (p.kind == ParamType::Token && reaches_identifier)
            .then(|| param_key(t, &format!("{}:of-type", p.code))),
        identifier_key: (p.kind == ParamType::Reference)
            .then(|| param_key(t, &format!("{}:identifier", p.code))),
    }
}

/// The parameters of a hosted type with their compiled forms.
pub(crate) fn type_params(resource_type: &str) -> Option<&'static TypeParams> {
    registry().iter().find(|t| t.resource_type == resource_type)
}

/// The compiled form of a parameter of the registry.
fn compiled_param(param: &SearchParam) -> Option<&'static CompiledParam> {
    let t = type_params(&param.resource_type)?;
    let i = t
        .params
        .binary_search_by(|p| p.code.as_str().cmp(&param.code))
        .ok()?;
    t.compiled.get(i)
}

/// Bumped whenever extraction changes what rows a resource produces in a way the registry
/// file does not show (a new datatype rule, different normalization).
/// 2: the record date rows ([`crate::search::record_sort`]).
const EXTRACTION_REVISION: u32 = 2;

/// Identifies the rules that turn resources into index rows. A database whose index was
/// written under another generation is rebuilt at start-up.
pub fn index_generation() -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in SEARCH_PARAMETERS_JSON.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{EXTRACTION_REVISION}-{hash:08x}")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;

    use serde_json::Value;

    use super::*;
    use crate::search::fhirpath::Item;

    #[test]
    fn every_hosted_type_has_its_parameters_sorted_and_keyed() {
        for &t in HOSTED {
            let all = params(t);
            assert!(all.len() >= 6, "{t}");
            for code in [
                "_id",
                "_lastUpdated",
                "_tag",
                "_security",
                "_profile",
                "_source",
            ] {
                let p = param(t, code).unwrap_or_else(|| panic!("{t} lacks {code}"));
                assert!(
                    p.expression.starts_with(&format!("{t}.")),
                    "{}",
                    p.expression
                );
            }
            assert!(all.windows(2).all(|w| w[0].code < w[1].code), "{t}");
            for p in all {
                assert_eq!(p.key, param_key(t, &p.code));
                assert_eq!(p.resource_type, t);
            }
        }
        assert_eq!(params("Binary").len(), 6);
        assert!(params("Observation").is_empty());
        assert!(params("").is_empty());
        assert!(param("Patient", "nope").is_none());

        let family = param("Patient", "family").map(|p| (p.kind, p.expression.as_str()));
        assert_eq!(family, Some((ParamType::String, "Patient.name.family")));
        let subject = param("DocumentReference", "subject");
        assert_eq!(
            subject.map(|p| p.targets.clone()),
            Some(
                vec!["Device", "Group", "Patient", "Practitioner"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            )
        );
        let relationship = param("DocumentReference", "relationship");
        assert_eq!(
            relationship.map(|p| p.components.clone()),
            Some(vec![
                Component {
                    code: "relation".into(),
                    expression: "code".into()
                },
                Component {
                    code: "relatesto".into(),
                    expression: "target".into()
                },
            ])
        );
        assert_eq!(
            param("Patient", "_lastUpdated").map(|p| p.url.as_str()),
            Some("http://hl7.org/fhir/SearchParameter/Resource-lastUpdated")
        );
    }

    #[test]
    fn every_expression_compiles() {
        for &t in HOSTED {
            let types = type_params(t).unwrap_or_else(|| panic!("{t} not loaded"));
            assert_eq!(types.params.len(), types.compiled.len());
            for (p, c) in types.params.iter().zip(&types.compiled) {
                if let Err(e) = &c.expression {
                    panic!("{t}.{}: {e} in {}", p.code, p.expression);
                }
                assert_eq!(c.components.len(), p.components.len());
                for (component, compiled) in p.components.iter().zip(&c.components) {
                    if let Err(e) = &compiled.expression {
                        panic!("{t}.{} component {}: {e}", p.code, component.code);
                    }
                }
                assert!(c.components.iter().all(|c| c.kind.is_some()));
            }
        }
    }

    /// The names rows are stored under: every parameter, `:of-type` of identifier-valued
    /// tokens, `:identifier` of references.
    fn key_names() -> Vec<(String, String)> {
        let mut names = Vec::new();
        for &t in HOSTED {
            for p in params(t) {
                names.push((t.to_string(), p.code.clone()));
                if identifier_valued(p) {
                    names.push((t.to_string(), format!("{}:of-type", p.code)));
                }
                if p.kind == ParamType::Reference {
                    names.push((t.to_string(), format!("{}:identifier", p.code)));
                }
            }
        }
        names
    }

    #[test]
    fn no_two_keys_collide() {
        let names = key_names();
        let mut seen: HashMap<ParamKey, String> = HashMap::new();
        for (t, name) in &names {
            let full = format!("{t}.{name}");
            if let Some(other) = seen.insert(param_key(t, name), full.clone()) {
                panic!("{full} and {other} share a key");
            }
        }
        assert!(names
            .iter()
            .any(|(t, n)| t == "Patient" && n == "identifier:of-type"));
        assert!(names
            .iter()
            .any(|(t, n)| t == "DocumentReference" && n == "subject:identifier"));
    }

    #[test]
    fn identifier_valued_parameters() {
        let valued = |t: &str, code: &str| param(t, code).is_some_and(identifier_valued);
        assert!(valued("Patient", "identifier"));
        assert!(valued("DocumentReference", "identifier"));
        assert!(valued("Consent", "identifier"));
        assert!(!valued("Patient", "gender"));
        assert!(!valued("Patient", "given"));
        assert!(!valued("AuditEvent", "altid"));
        assert!(!valued("AuditEvent", "agent"));
        let all: Vec<String> = HOSTED
            .iter()
            .flat_map(|t| params(t).iter().filter(|p| identifier_valued(p)))
            .map(|p| format!("{}.{}", p.resource_type, p.code))
            .collect();
        assert_eq!(all.len(), 6, "{all:?}");
    }

    /// The official examples of `t` (`{t}-*.json` in ../shared/fhir-r4/examples).
    fn examples(t: &str) -> Vec<(String, Value)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fhir-r4/examples");
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut out = Vec::new();
        for path in entries.filter_map(Result::ok).map(|e| e.path()) {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if name.starts_with(&format!("{t}-")) && name.ends_with(".json") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let value: Value =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
                if value["resourceType"] == t {
                    out.push((name, value));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn every_expression_evaluates_on_official_examples() {
        for &t in HOSTED {
            let types = type_params(t).unwrap_or_else(|| panic!("{t} not loaded"));
            let examples = examples(t);
            assert!(!examples.is_empty(), "no example of {t}");
            let mut found = 0;
            for (name, example) in &examples {
                for (p, c) in types.params.iter().zip(&types.compiled) {
                    let Ok(expression) = &c.expression else {
                        panic!("{t}.{} did not compile", p.code);
                    };
                    let items = expression.evaluate(example, types.resource_type);
                    for item in &items {
                        if let Item::Node { ty, .. } = item {
                            assert!(
                                expression.result_types().contains(ty),
                                "{name} {}: {ty} not among {:?}",
                                p.code,
                                expression.result_types()
                            );
                        }
                    }
                    if p.code != "_id" && !items.is_empty() {
                        found += 1;
                    }
                    for item in &items {
                        let Item::Node { value, ty } = *item else {
                            continue;
                        };
                        for component in &c.components {
                            if let Ok(e) = &component.expression {
                                let _ = e.evaluate(value, ty);
                            }
                        }
                    }
                }
            }
            assert!(
                found > 0 || t == "Binary",
                "nothing found in examples of {t}"
            );
        }
    }
}
