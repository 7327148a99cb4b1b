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
    let _ = resource_type;
    todo!("generated registry (helper A)")
}
