//! The CapabilityStatement served at `/metadata`, built from what the server says it supports.

use serde_json::{json, Map, Value};

/// A resource-level interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeInteraction {
    Read,
    Vread,
    Update,
    Patch,
    Delete,
    HistoryInstance,
    HistoryType,
    Create,
    SearchType,
}

impl TypeInteraction {
    /// The FHIR `type-restful-interaction` code.
    pub fn code(self) -> &'static str {
        match self {
            TypeInteraction::Read => "read",
            TypeInteraction::Vread => "vread",
            TypeInteraction::Update => "update",
            TypeInteraction::Patch => "patch",
            TypeInteraction::Delete => "delete",
            TypeInteraction::HistoryInstance => "history-instance",
            TypeInteraction::HistoryType => "history-type",
            TypeInteraction::Create => "create",
            TypeInteraction::SearchType => "search-type",
        }
    }
}

/// A whole-system interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemInteraction {
    Transaction,
    Batch,
    SearchSystem,
    HistorySystem,
}

impl SystemInteraction {
    /// The FHIR `system-restful-interaction` code.
    pub fn code(self) -> &'static str {
        match self {
            SystemInteraction::Transaction => "transaction",
            SystemInteraction::Batch => "batch",
            SystemInteraction::SearchSystem => "search-system",
            SystemInteraction::HistorySystem => "history-system",
        }
    }
}

/// A supported search parameter of a resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParamCapability {
    pub name: String,
    pub definition: Option<String>,
    /// token|reference|date|string|uri|composite|number|quantity|special
    pub kind: String,
    pub documentation: Option<String>,
}

/// What the server supports for one resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceCapability {
    pub resource_type: String,
    pub interactions: Vec<TypeInteraction>,
    /// "versioned-update"
    pub versioning: &'static str,
    pub read_history: bool,
    pub update_create: bool,
    pub conditional_create: bool,
    pub conditional_update: bool,
    /// "not-supported"
    pub conditional_read: &'static str,
    /// "single" | "not-supported"
    pub conditional_delete: &'static str,
    /// `_include` values supported (e.g. `DocumentReference:subject`).
    pub search_include: Vec<String>,
    /// `_revinclude` values supported.
    pub search_rev_include: Vec<String>,
    pub search_params: Vec<SearchParamCapability>,
    /// Operations on this type or its instances.
    pub operations: Vec<OperationCapability>,
    pub documentation: Option<String>,
}

/// An operation a resource type supports (`rest.resource.operation`).
#[derive(Debug, Clone, PartialEq)]
pub struct OperationCapability {
    /// Without the `$`.
    pub name: String,
    /// The canonical of its OperationDefinition.
    pub definition: String,
    pub documentation: String,
}

/// Everything the CapabilityStatement says.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerCapabilities {
    pub fhir_base_url: String,
    pub software_name: String,
    pub software_version: String,
    /// e.g. ["application/fhir+json", "application/fhir+xml", "json", "xml"]
    pub formats: Vec<String>,
    pub resources: Vec<ResourceCapability>,
    pub system_interactions: Vec<SystemInteraction>,
    /// A CapabilityStatement.rest.security element (the server's SMART endpoints).
    pub security: Option<Value>,
    /// FHIR dateTime the statement was built.
    pub date: String,
}

/// Builds a CapabilityStatement (kind "instance", status "active", fhirVersion "4.0.1",
/// implementation.url = base, rest mode "server").
pub fn capability_statement(caps: &ServerCapabilities) -> Value {
    let mut rest = Map::new();
    rest.insert("mode".into(), json!("server"));
    if let Some(security) = &caps.security {
        rest.insert("security".into(), security.clone());
    }
    let resources: Vec<Value> = caps.resources.iter().map(resource).collect();
    if !resources.is_empty() {
        rest.insert("resource".into(), Value::Array(resources));
    }
    let interactions: Vec<Value> = caps
        .system_interactions
        .iter()
        .map(|i| json!({"code": i.code()}))
        .collect();
    if !interactions.is_empty() {
        rest.insert("interaction".into(), Value::Array(interactions));
    }
    let mut statement = Map::new();
    statement.insert("resourceType".into(), json!("CapabilityStatement"));
    statement.insert("status".into(), json!("active"));
    statement.insert("date".into(), json!(caps.date));
    statement.insert("kind".into(), json!("instance"));
    statement.insert(
        "software".into(),
        json!({"name": caps.software_name, "version": caps.software_version}),
    );
    statement.insert(
        "implementation".into(),
        json!({"description": format!("{} FHIR R4 server", caps.software_name), "url": caps.fhir_base_url}),
    );
    statement.insert("fhirVersion".into(), json!("4.0.1"));
    statement.insert("format".into(), json!(caps.formats));
    statement.insert("rest".into(), json!([Value::Object(rest)]));
    Value::Object(statement)
}

fn resource(r: &ResourceCapability) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!(r.resource_type));
    out.insert(
        "profile".into(),
        json!(format!(
            "http://hl7.org/fhir/StructureDefinition/{}",
            r.resource_type
        )),
    );
    if let Some(doc) = non_empty(&r.documentation) {
        out.insert("documentation".into(), json!(doc));
    }
    let interactions: Vec<Value> = r
        .interactions
        .iter()
        .map(|i| json!({"code": i.code()}))
        .collect();
    if !interactions.is_empty() {
        out.insert("interaction".into(), Value::Array(interactions));
    }
    if !r.operations.is_empty() {
        let operations: Vec<Value> = r
            .operations
            .iter()
            .map(|o| json!({"name": o.name, "definition": o.definition, "documentation": o.documentation}))
            .collect();
        out.insert("operation".into(), Value::Array(operations));
    }
    out.insert("versioning".into(), json!(r.versioning));
    out.insert("readHistory".into(), json!(r.read_history));
    out.insert("updateCreate".into(), json!(r.update_create));
    out.insert("conditionalCreate".into(), json!(r.conditional_create));
    out.insert("conditionalRead".into(), json!(r.conditional_read));
    out.insert("conditionalUpdate".into(), json!(r.conditional_update));
    out.insert("conditionalDelete".into(), json!(r.conditional_delete));
    if !r.search_include.is_empty() {
        out.insert("searchInclude".into(), json!(r.search_include));
    }
    if !r.search_rev_include.is_empty() {
        out.insert("searchRevInclude".into(), json!(r.search_rev_include));
    }
    let params: Vec<Value> = r.search_params.iter().map(search_param).collect();
    if !params.is_empty() {
        out.insert("searchParam".into(), Value::Array(params));
    }
    Value::Object(out)
}

fn search_param(p: &SearchParamCapability) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(p.name));
    if let Some(def) = non_empty(&p.definition) {
        out.insert("definition".into(), json!(def));
    }
    out.insert("type".into(), json!(p.kind));
    if let Some(doc) = non_empty(&p.documentation) {
        out.insert("documentation".into(), json!(doc));
    }
    Value::Object(out)
}

/// FHIR strings may not be empty, so empty optional text is left out.
fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.trim().is_empty())
}
