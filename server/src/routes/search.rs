//! Search on a resource type: `GET /{type}?…` and `POST /{type}/_search` (parameters in a
//! form-encoded body, and in the URL too), answered with `searchset` Bundles paged by
//! opaque cursors.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use fhir_profiles::format::{json_bytes_to_xml, FhirFormat};

use fhirledger_access::Interaction;
use fhirledger_service::query::form_pairs;
use fhirledger_service::search;
use fhirledger_service::types::check_type;

use crate::http::body::read_body;
use crate::http::fhir_request::FhirRequest;
use crate::http::negotiate::ResponseFormat;
use crate::http::respond::{FHIR_JSON, FHIR_XML};
use fhirledger_service::ServiceError;

pub async fn search_get(fhir: FhirRequest, path: web::Path<String>) -> HttpResponse {
    let rt = path.into_inner();
    let params = form_pairs(fhir.req.query_string());
    fhir.answer(run(&fhir, rt, params).await)
}

pub async fn search_post(
    fhir: FhirRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let rt = path.into_inner();
    let result = async {
        let body = read_body(&fhir.req, payload, fhir.state.max_body_bytes).await?;
        let mut all = form_pairs(fhir.req.query_string());
        all.append(&mut form_body(&fhir.req, &body)?);
        run(&fhir, rt, all).await
    }
    .await;
    fhir.answer(result)
}

/// The parameters of a `_search` body, which must be form-encoded.
fn form_body(req: &HttpRequest, body: &[u8]) -> Result<Vec<(String, String)>, ServiceError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !body.is_empty() && !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(ServiceError::unsupported_media_type(format!(
            "a _search body must be application/x-www-form-urlencoded, not '{content_type}'"
        )));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ServiceError::bad_request("the _search body is not UTF-8"))?;
    Ok(form_pairs(text))
}

async fn run(
    fhir: &FhirRequest,
    rt: String,
    params: Vec<(String, String)>,
) -> Result<HttpResponse, ServiceError> {
    check_type(&rt)?;
    let format = fhir.format()?;
    let request = search::parse(&fhir.state.fhir_base, &rt, &params, fhir.lenient())?;
    // Refused before queueing for the database.
    fhir.guard.permit(&rt, Interaction::Search)?;
    let guard = fhir.guard.clone();
    let json = fhir
        .state
        .db
        .run_read(move |store| search::execute(store, &guard, &request))
        .await?;
    bundle_response(json, format)
}

/// The Bundle in the negotiated format.
fn bundle_response(json: String, format: ResponseFormat) -> Result<HttpResponse, ServiceError> {
    let (content_type, body) = match (format.format, format.pretty) {
        (FhirFormat::Json, false) => (FHIR_JSON, json.into_bytes()),
        (FhirFormat::Json, true) => {
            let value: serde_json::Value = serde_json::from_str(&json)
                .map_err(|e| ServiceError::internal(format!("search Bundle: {e}")))?;
            (
                FHIR_JSON,
                fhir_profiles::format::to_json_bytes(&value, true),
            )
        }
        (FhirFormat::Xml, pretty) => (
            FHIR_XML,
            json_bytes_to_xml(json.as_bytes(), pretty)
                .map_err(|e| ServiceError::internal(e.to_string()))?
                .into_bytes(),
        ),
    };
    Ok(HttpResponse::build(StatusCode::OK)
        .insert_header(("Content-Type", content_type))
        .body(body))
}
