//! The CapabilityStatement is valid R4: it parses strictly and validates without errors.

use fhir_profiles::capability::{
    capability_statement, OperationCapability, ResourceCapability, SearchParamCapability,
    ServerCapabilities, SystemInteraction, TypeInteraction,
};
use fhir_profiles::format::{parse_resource, to_json_bytes, to_xml_string, FhirFormat};
use fhir_profiles::outcome::has_errors;
use fhir_profiles::resource_types::HOSTED;
use fhir_profiles::validate::validate_resource;
use serde_json::json;

fn caps(security: Option<serde_json::Value>) -> ServerCapabilities {
    let resources = HOSTED
        .iter()
        .map(|t| ResourceCapability {
            resource_type: t.to_string(),
            interactions: vec![
                TypeInteraction::Read,
                TypeInteraction::Vread,
                TypeInteraction::Update,
                TypeInteraction::Patch,
                TypeInteraction::Delete,
                TypeInteraction::HistoryInstance,
                TypeInteraction::HistoryType,
                TypeInteraction::Create,
                TypeInteraction::SearchType,
            ],
            versioning: "versioned-update",
            read_history: true,
            update_create: false,
            conditional_create: true,
            conditional_update: true,
            conditional_read: "not-supported",
            conditional_delete: if *t == "AuditEvent" {
                "not-supported"
            } else {
                "single"
            },
            search_include: Vec::new(),
            search_rev_include: Vec::new(),
            operations: vec![OperationCapability {
                name: "emergency-access".into(),
                definition: "urn:fhirledger:OperationDefinition:emergency-access".into(),
                documentation: "break the glass".into(),
            }],
            search_params: vec![
                SearchParamCapability {
                    name: "_id".into(),
                    definition: Some("http://hl7.org/fhir/SearchParameter/Resource-id".into()),
                    kind: "token".into(),
                    documentation: Some("Logical id".into()),
                },
                SearchParamCapability {
                    name: "patient".into(),
                    definition: None,
                    kind: "reference".into(),
                    documentation: Some(String::new()),
                },
            ],
            documentation: Some(format!("{t} resources")),
        })
        .collect();
    ServerCapabilities {
        fhir_base_url: "https://fhir.example.org/fhir".into(),
        software_name: "fhirledger".into(),
        software_version: "0.1.0".into(),
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
            SystemInteraction::SearchSystem,
            SystemInteraction::HistorySystem,
        ],
        security,
        date: "2024-05-01T12:00:00Z".into(),
    }
}

#[test]
fn statement_is_valid_r4() {
    let security = json!({"cors": true, "service": [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}]});
    for caps in [caps(None), caps(Some(security))] {
        let statement = capability_statement(&caps);
        let parsed = parse_resource(&to_json_bytes(&statement, false), FhirFormat::Json);
        let Ok(parsed) = parsed else {
            panic!("not strict R4: {:?}", parsed.err().map(|e| e.issues));
        };
        assert_eq!(parsed, statement);
        let issues = validate_resource(&statement);
        assert!(!has_errors(&issues), "{issues:?}");
        assert!(to_xml_string(&statement, true).is_ok());
    }
}

#[test]
fn statement_says_what_the_server_does() {
    let s = capability_statement(&caps(None));
    assert_eq!(s["kind"], "instance");
    assert_eq!(s["status"], "active");
    assert_eq!(s["fhirVersion"], "4.0.1");
    assert_eq!(s["implementation"]["url"], "https://fhir.example.org/fhir");
    assert_eq!(s["software"]["name"], "fhirledger");
    assert_eq!(s["format"][1], "application/fhir+xml");
    let rest = &s["rest"][0];
    assert_eq!(rest["mode"], "server");
    assert!(rest.get("security").is_none());
    assert_eq!(rest["interaction"][2]["code"], "search-system");
    let doc = &rest["resource"][0];
    assert_eq!(doc["type"], "DocumentReference");
    assert_eq!(doc["interaction"][5]["code"], "history-instance");
    assert_eq!(doc["interaction"][8]["code"], "search-type");
    assert_eq!(doc["versioning"], "versioned-update");
    assert_eq!(doc["conditionalDelete"], "single");
    assert_eq!(
        doc["searchParam"][1],
        json!({"name": "patient", "type": "reference"})
    );
    assert_eq!(rest["resource"][7]["conditionalDelete"], "not-supported");
}
