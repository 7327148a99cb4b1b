//! The Merkle log over FHIR, answered as Parameters: `GET AuditEvent/{id}/$proof`,
//! `GET Consent/{id}/_history/{vid}/$proof` and `GET $consistency?from&to`
//! (see `fhirledger_service::proofs`), and `GET $ledger-status` (how far the
//! log is anchored, `fhirledger_service::anchoring::ledger_status`).

use actix_web::{web, HttpResponse};
use fhirledger_service::anchoring::ledger_status as status_of;
use fhirledger_service::proofs::{
    consistency_proof, inclusion_proof, Anchor, ConsistencyProof, InclusionProof, Proven,
};
use fhirledger_service::ServiceError;
use serde_json::{json, Value};

use crate::http::fhir_request::FhirRequest;
use crate::http::negotiate::query_param;
use crate::http::respond::resource_body;

pub async fn audit_event_proof(fhir: FhirRequest, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    fhir.answer(
        proof(&fhir, move |store, guard| {
            inclusion_proof(store, guard, Proven::AuditEvent { id: &id })
        })
        .await,
    )
}

pub async fn consent_version_proof(
    fhir: FhirRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (id, vid) = path.into_inner();
    fhir.answer(
        proof(&fhir, move |store, guard| {
            let version = vid.parse::<i64>().map_err(|_| {
                ServiceError::not_found(format!("Consent/{id} has no version '{vid}'"))
            })?;
            inclusion_proof(store, guard, Proven::ConsentVersion { id: &id, version })
        })
        .await,
    )
}

async fn proof(
    fhir: &FhirRequest,
    work: impl FnOnce(
            &fhirledger_postgres::PgStore,
            &fhirledger_service::Guard,
        ) -> Result<InclusionProof, ServiceError>
        + Send
        + 'static,
) -> Result<HttpResponse, ServiceError> {
    let format = fhir.format()?;
    let guard = fhir.guard.clone();
    let proof = fhir
        .state
        .db
        .run_read(move |store| work(store, &guard))
        .await?;
    let mut parameters = vec![
        decimal("leafIndex", proof.leaf_index),
        decimal("treeSize", proof.anchor.tree_size),
        string("leafData", &proof.leaf_data),
        string("leafHash", &proof.leaf_hash),
        string("salt", &proof.salt),
        string("root", &proof.anchor.root),
    ];
    parameters.extend(proof.path.iter().map(|p| string("path", p)));
    parameters.extend(anchored_at(&proof.anchor));
    respond(parameters, format)
}

pub async fn consistency(fhir: FhirRequest) -> HttpResponse {
    fhir.answer(consistency_inner(&fhir).await)
}

async fn consistency_inner(fhir: &FhirRequest) -> Result<HttpResponse, ServiceError> {
    let format = fhir.format()?;
    let size = |name: &str| -> Result<u64, ServiceError> {
        let raw = query_param(&fhir.req, name).ok_or_else(|| {
            ServiceError::bad_request(format!(
                "$consistency needs '{name}', an anchored tree size"
            ))
        })?;
        raw.parse::<u64>().map_err(|_| {
            ServiceError::bad_request(format!("'{name}' must be a whole number, not '{raw}'"))
        })
    };
    let (from, to) = (size("from")?, size("to")?);
    let guard = fhir.guard.clone();
    let ConsistencyProof { from, to, path } = fhir
        .state
        .db
        .run_read(move |store| consistency_proof(store, &guard, from, to))
        .await?;
    let mut parameters = vec![
        decimal("from", from.tree_size),
        decimal("to", to.tree_size),
        string("fromRoot", &from.root),
        string("toRoot", &to.root),
    ];
    parameters.extend(path.iter().map(|p| string("path", p)));
    parameters.extend(anchored_at(&to));
    respond(parameters, format)
}

/// `GET /fhir/$ledger-status`: how far the Merkle log is anchored on chain
/// (see `fhirledger_service::anchoring::ledger_status`).
pub async fn ledger_status(fhir: FhirRequest) -> HttpResponse {
    fhir.answer(ledger_status_inner(&fhir).await)
}

async fn ledger_status_inner(fhir: &FhirRequest) -> Result<HttpResponse, ServiceError> {
    let format = fhir.format()?;
    let guard = fhir.guard.clone();
    let local = fhir.state.anchoring;
    let status = fhir
        .state
        .db
        .run_read(move |store| status_of(store, &guard, local))
        .await?;
    let (ct, body) = resource_body(&status.to_parameters(), format)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .content_type(ct)
        .body(body))
}

/// Where the (last) checkpoint of a proof is anchored.
fn anchored_at(anchor: &Anchor) -> [Value; 4] {
    [
        decimal("chainId", anchor.chain_id),
        decimal("blockNumber", anchor.block_number),
        string("contract", &anchor.contract),
        string("txHash", &anchor.tx_hash),
    ]
}

fn decimal(name: &str, value: u64) -> Value {
    json!({ "name": name, "valueDecimal": value })
}

fn string(name: &str, value: &str) -> Value {
    json!({ "name": name, "valueString": value })
}

fn respond(
    parameters: Vec<Value>,
    format: crate::http::negotiate::ResponseFormat,
) -> Result<HttpResponse, ServiceError> {
    let body = json!({ "resourceType": "Parameters", "parameter": parameters });
    let (ct, body) = resource_body(&body, format)?;
    Ok(HttpResponse::Ok().content_type(ct).body(body))
}
