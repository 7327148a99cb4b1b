//! `GET /fhir/metadata`: the CapabilityStatement, derived from the routes
//! this module set registers so that it cannot claim more than is served.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{SecondsFormat, Utc};
use fhir_profiles::capability::{
    capability_statement, OperationCapability, ResourceCapability, SearchParamCapability,
    ServerCapabilities, SystemInteraction, TypeInteraction,
};
use fhir_profiles::resource_types::HOSTED;
use fhir_profiles::search::{params, ParamType};

use crate::http::error::ErrorResponse;
use crate::http::negotiate::error_format;
use crate::http::negotiate::response_format;
use crate::http::respond::resource_body;
use crate::state::AppState;

/// Interactions every hosted type supports.
const FULL: &[TypeInteraction] = &[
    TypeInteraction::Read,
    TypeInteraction::Vread,
    TypeInteraction::Update,
    TypeInteraction::Delete,
    TypeInteraction::HistoryInstance,
    TypeInteraction::HistoryType,
    TypeInteraction::Create,
    TypeInteraction::SearchType,
];

/// AuditEvents are never changed: the server records its own, backend
/// clients may add theirs; an event's history is itself.
const APPEND_ONLY: &[TypeInteraction] = &[
    TypeInteraction::Read,
    TypeInteraction::Vread,
    TypeInteraction::HistoryInstance,
    TypeInteraction::Create,
    TypeInteraction::SearchType,
];

/// The search parameters of a type, from the registry the search engine uses.
fn search_params(resource_type: &str) -> Vec<SearchParamCapability> {
    params(resource_type)
        .iter()
        .map(|p| SearchParamCapability {
            name: p.code.clone(),
            definition: Some(p.url.clone()),
            kind: p.kind.code().to_string(),
            documentation: Some(p.description.clone()),
        })
        .collect()
}

/// `_include` values of a type: each of its reference parameters, and `*`.
fn includes(resource_type: &str) -> Vec<String> {
    let mut out: Vec<String> = params(resource_type)
        .iter()
        .filter(|p| p.kind == ParamType::Reference)
        .map(|p| format!("{resource_type}:{}", p.code))
        .collect();
    if !out.is_empty() {
        out.push("*".into());
    }
    out
}

/// `_revinclude` values for a type: the reference parameters of hosted types that can
/// point to it.
fn rev_includes(resource_type: &str) -> Vec<String> {
    HOSTED
        .iter()
        .flat_map(|source| params(source).iter().map(move |p| (source, p)))
        .filter(|(_, p)| {
            p.kind == ParamType::Reference && p.targets.iter().any(|t| t == resource_type)
        })
        .map(|(source, p)| format!("{source}:{}", p.code))
        .collect()
}

/// `rest.security`: SMART on FHIR, with the `oauth-uris` extension pointing
/// at our authorization server.
fn security(issuer: &str) -> serde_json::Value {
    serde_json::json!({
        "cors": true,
        "service": [{
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR",
                "display": "SMART-on-FHIR"
            }],
            "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)"
        }],
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [
                {"url": "authorize", "valueUri": format!("{issuer}/authorize")},
                {"url": "token", "valueUri": format!("{issuer}/token")},
                {"url": "introspect", "valueUri": format!("{issuer}/introspect")},
                {"url": "revoke", "valueUri": format!("{issuer}/revoke")}
            ]
        }]
    })
}

/// The Consent operations (README, "Consent").
fn operations(resource_type: &str) -> Vec<OperationCapability> {
    let op = |name: &str, documentation: &str| OperationCapability {
        name: name.to_string(),
        definition: format!("urn:fhirledger:OperationDefinition:{name}"),
        documentation: documentation.to_string(),
    };
    match resource_type {
        "Patient" => vec![op(
            "emergency-access",
            "POST Patient/{id}/$emergency-access with a Parameters 'reason' (valueString): a \
             doctor reads the patient's documents for a limited time (answered with 'expires'), \
             unless the patient's Consent denies break-the-glass (purpose v3-ActReason|BTG)",
        )],
        "DocumentReference" => vec![op(
            "access",
            "GET DocumentReference/{id}/$access?actor=Practitioner/{id}: whether that doctor \
             reads the document ('allowed') and what decided it ('reason': Consent/{id}, \
             author, emergency access or base policy); for the patient, compliance officers \
             and system/ clients",
        )],
        _ => Vec::new(),
    }
}

/// Builds the CapabilityStatement for a FHIR base URL and the issuer of its tokens.
pub fn build_capabilities(fhir_base: &str, issuer: &str) -> serde_json::Value {
    let resources = HOSTED
        .iter()
        .map(|t| {
            let writable = *t != "AuditEvent";
            ResourceCapability {
                resource_type: t.to_string(),
                interactions: if writable {
                    FULL.to_vec()
                } else {
                    APPEND_ONLY.to_vec()
                },
                versioning: "versioned-update",
                read_history: true,
                update_create: writable,
                conditional_create: writable,
                conditional_update: writable,
                conditional_read: "not-supported",
                conditional_delete: if writable { "single" } else { "not-supported" },
                search_include: includes(t),
                search_rev_include: rev_includes(t),
                search_params: search_params(t),
                operations: operations(t),
                documentation: None,
            }
        })
        .collect();
    let mut statement = capability_statement(&ServerCapabilities {
        fhir_base_url: fhir_base.to_string(),
        software_name: "fhirledger".into(),
        software_version: env!("CARGO_PKG_VERSION").into(),
        formats: vec![
            "application/fhir+json".into(),
            "application/fhir+xml".into(),
            "json".into(),
            "xml".into(),
        ],
        resources,
        system_interactions: vec![
            SystemInteraction::Transaction,
            SystemInteraction::Batch,
            SystemInteraction::HistorySystem,
        ],
        security: Some(security(issuer)),
        date: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
    });
    // The system-level operation (README, "Anchoring the audit trail on chain").
    if let Some(rest) = statement["rest"]
        .as_array_mut()
        .and_then(|r| r.first_mut())
        .and_then(|r| r.as_object_mut())
    {
        rest.insert(
            "operation".into(),
            serde_json::json!([{
                "name": "ledger-status",
                "definition": "urn:fhirledger:OperationDefinition:ledger-status",
                "documentation": "GET $ledger-status: how far the audit trail's Merkle log is \
                    anchored on chain (treeSize, anchoredSize, lagLeaves, lagSeconds, chainId, \
                    anchoredRoot, contract, lastTxHash, worker); for compliance officers and \
                    system/ clients with AuditEvent read"
            }]),
        );
    }
    statement
}

pub async fn metadata(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let result = response_format(&req).and_then(|format| {
        let (ct, body) = resource_body(&state.capability, format)?;
        Ok(HttpResponse::build(StatusCode::OK)
            .insert_header(("Content-Type", ct))
            .body(body))
    });
    result.unwrap_or_else(|e| e.respond(error_format(&req)))
}
