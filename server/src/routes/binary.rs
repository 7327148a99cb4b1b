//! Binary: raw uploads streamed into the database, and reads that answer
//! with the raw bytes or the Binary resource, as the `Accept` header asks.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use bytes::BytesMut;
use fhirledger_postgres::{PgStore, CHUNK_SIZE};
use fhirledger_service::reads::{read, BinaryBytes, ReadBinary};
use fhirledger_service::write::ChunkSource;
use fhirledger_service::{Prepared, ServiceError};
use futures_util::StreamExt;
use serde_json::Value;

use crate::http::body::check_declared_length;
use crate::http::fhir_request::FhirRequest;
use crate::http::negotiate::{
    accept_items, fhir_format_of, is_fhir_mime, query_param, response_format,
};
use crate::http::respond::{resource_body, versioned};
use crate::routes::instance::{deleted, prepared_body};

/// True when a request to `Binary` carries raw content rather than a FHIR
/// Binary resource.
fn is_raw_upload(req: &HttpRequest, rt: &str) -> bool {
    if rt != "Binary" {
        return false;
    }
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    !ct.is_some_and(is_fhir_mime)
}

/// Runs a write whose body is either a FHIR resource (parsed and validated
/// first) or, for Binary, raw bytes streamed chunk by chunk into the same
/// transaction while they arrive.
pub(crate) async fn run_write<T, F>(
    fhir: &FhirRequest,
    rt: &str,
    payload: web::Payload,
    op: F,
) -> Result<T, ServiceError>
where
    F: FnOnce(&PgStore, Prepared, Option<ChunkSource>) -> Result<T, ServiceError> + Send + 'static,
    T: Send + 'static,
{
    let (req, state) = (&fhir.req, &fhir.state);
    let limit = state.max_body_bytes;
    if !is_raw_upload(req, rt) {
        let prepared = prepared_body(req, rt, payload, limit, &state.fhir_base).await?;
        return state.db.run(move |store| op(store, prepared, None)).await;
    }
    check_declared_length(req, limit)?;
    let prepared = raw_binary(req, req.match_info().get("id"))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, String>>(4);
    let source: ChunkSource = Box::new(std::iter::from_fn(move || rx.blocking_recv()));
    // The transaction runs while the body arrives: the pump feeds it through
    // the channel once it has its connection.
    let job = state.db.run(move |store| op(store, prepared, Some(source)));
    let pump = pump_payload(payload, tx, limit);
    let (result, ()) = tokio::join!(job, pump);
    result
}

/// Moves the request body into the channel in chunks of about CHUNK_SIZE,
/// stopping when the consumer is gone or the limit is passed.
async fn pump_payload(
    mut payload: web::Payload,
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, String>>,
    limit: u64,
) {
    let mut buffer = BytesMut::with_capacity(CHUNK_SIZE);
    let mut total: u64 = 0;
    while let Some(chunk) = payload.next().await {
        match chunk {
            Ok(bytes) => {
                total += bytes.len() as u64;
                buffer.extend_from_slice(&bytes);
                let flush = buffer.len() >= CHUNK_SIZE || total > limit;
                if flush && (tx.send(Ok(buffer.split().to_vec())).await.is_err() || total > limit) {
                    return;
                }
            }
            Err(e) => {
                let _ = tx
                    .send(Err(format!("the request body could not be read: {e}")))
                    .await;
                return;
            }
        }
    }
    if !buffer.is_empty() {
        let _ = tx.send(Ok(buffer.to_vec())).await;
    }
}

/// The Binary resource that describes a raw upload; on `PUT /Binary/{id}`
/// it carries the id from the URL, as a resource body would.
fn raw_binary(req: &HttpRequest, url_id: Option<&str>) -> Result<Prepared, ServiceError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().map(str::trim).unwrap_or(""))
        .unwrap_or("application/octet-stream")
        .to_string();
    if content_type.is_empty() || content_type.chars().any(|c| c.is_control()) {
        return Err(ServiceError::unsupported_media_type(
            "the Content-Type of a Binary upload is not readable",
        ));
    }
    let context = req
        .headers()
        .get("X-Security-Context")
        .and_then(|v| v.to_str().ok());
    Ok(fhirledger_service::prepare::raw_binary(
        content_type,
        context,
        url_id.map(str::to_string),
    ))
}

/// Whether `accept` admits `content_type` (exact, `type/*` or `*/*`).
fn accepts(accept: &str, content_type: &str) -> bool {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    accept == "*/*"
        || accept == ct
        || accept
            .strip_suffix("/*")
            .is_some_and(|major| ct.split('/').next() == Some(major))
}

/// Reads a Binary version: raw bytes when `Accept` admits the stored type
/// (or says nothing), the Binary resource for `_format` or a FHIR `Accept`.
pub(crate) async fn serve_binary(
    fhir: &FhirRequest,
    id: String,
    version: Option<i64>,
) -> Result<HttpResponse, ServiceError> {
    let guard = fhir.guard.clone();
    let (v, located) = fhir
        .state
        .db
        .run_read(move |store| {
            let op = ReadBinary { id: &id, version };
            read(store, &guard, op).map(|found| found.value)
        })
        .await?;
    let req = &fhir.req;
    let Some(at) = located else {
        return Ok(deleted(req, &v));
    };
    let bytes = BinaryBytes::new(fhir.state.db.clone(), at);
    let stored: Value = serde_json::from_str(v.content.as_deref().unwrap_or("{}"))
        .map_err(|e| ServiceError::internal(format!("stored JSON is corrupt: {e}")))?;
    let content_type = stored
        .get("contentType")
        .and_then(Value::as_str)
        .unwrap_or("application/octet-stream")
        .to_string();
    let accept = accept_items(req);
    let wants_resource = query_param(req, "_format").is_some()
        || match accept.first() {
            None => false,
            Some(first) => {
                !accepts(&first.mime, &content_type) && fhir_format_of(&first.mime).is_some()
            }
        };
    if !wants_resource
        && !accept.is_empty()
        && !accept.iter().any(|a| accepts(&a.mime, &content_type))
    {
        return Err(ServiceError::not_acceptable(format!(
            "this Binary is {content_type}; ask for that type or for application/fhir+json / application/fhir+xml"
        )));
    }
    if wants_resource {
        let format = response_format(req)?;
        let mut resource = stored;
        let data = bytes.read_to_end().await?;
        if !data.is_empty() {
            resource["data"] =
                Value::String(base64::engine::general_purpose::STANDARD.encode(&data));
        }
        let (ct, body) = resource_body(&resource, format)?;
        return Ok(versioned(StatusCode::OK, &v)
            .insert_header(("Content-Type", ct))
            .body(body));
    }
    let digest = base64::engine::general_purpose::STANDARD.encode(&bytes.meta().sha256);
    let size = u64::try_from(bytes.meta().size).unwrap_or(0);
    Ok(versioned(StatusCode::OK, &v)
        .insert_header(("Content-Type", content_type))
        .insert_header(("Repr-Digest", format!("sha-256=:{digest}:")))
        .no_chunking(size)
        .streaming(bytes.into_stream()))
}
