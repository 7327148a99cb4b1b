//! Reading request bodies with a size limit (413 past it).

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use bytes::BytesMut;
use futures_util::StreamExt;

use fhirledger_service::ServiceError;

/// Refuses early when `Content-Length` already announces too much.
pub fn check_declared_length(req: &HttpRequest, limit: u64) -> Result<(), ServiceError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > limit => Err(ServiceError::too_large(limit)),
        _ => Ok(()),
    }
}

/// Collects the whole body, up to `limit` bytes.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: u64,
) -> Result<web::Bytes, ServiceError> {
    check_declared_length(req, limit)?;
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ServiceError::bad_request(format!("cannot read the request body: {e}")))?;
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(ServiceError::too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
