//! `GET /health/live` and `GET /health/ready`, for load balancers and
//! Kubernetes probes (see `fhirledger_service::health` for what each means).
//!
//! Answers are `application/health+json` (the IETF "Health Check Response
//! Format for HTTP APIs" draft that Kubernetes tooling and most balancers
//! read): `status` `pass`, `warn` or `fail`, and `checks` naming each
//! component. `pass` and `warn` are 200, `fail` is 503. The probes need no
//! token and touch no patient's data, so they are not audited; they name
//! no resource and carry nothing a patient could be recognised by.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, SecondsFormat, Utc};
use fhirledger_service::health::{readiness, Readiness};
use serde_json::{json, Map, Value};

use crate::state::AppState;

/// Registers the two probes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/health/live")
            .route(web::get().to(live))
            .route(web::head().to(live)),
    )
    .service(
        web::resource("/health/ready")
            .route(web::get().to(ready))
            .route(web::head().to(ready)),
    );
}

/// Alive: the process answers and its audit writers run.
async fn live(state: web::Data<AppState>) -> HttpResponse {
    let writers = state.audit_log.writers();
    let (running, started) = (writers.running(), writers.started());
    let pass = running == started;
    let check = json!({
        "status": if pass { "pass" } else { "fail" },
        "observedValue": running,
        "observedUnit": "threads",
        "output": if pass {
            Value::Null
        } else {
            json!(format!("{} of {started} audit writers stopped: reads cannot be audited", started - running))
        },
    });
    respond(pass, pass, checks([("audit:writers", check)]))
}

/// Ready: the database answers and holds this build's schema.
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let report = readiness(&state.db, &state.sequencer, state.anchoring).await;
    let healthy = !report.sequencer_failing() && !report.anchoring_behind();
    respond(report.is_ready(), healthy, ready_checks(&report))
}

fn ready_checks(report: &Readiness) -> Map<String, Value> {
    let database = match &report.database {
        Ok(()) => json!({ "status": "pass", "componentType": "datastore" }),
        Err(why) => json!({ "status": "fail", "componentType": "datastore", "output": why }),
    };
    let migrations = if report.database.is_err() {
        json!({ "status": "fail", "output": "unknown: the database did not answer" })
    } else if report.pending_migrations.is_empty() {
        json!({ "status": "pass", "observedValue": 0, "observedUnit": "pending migrations" })
    } else {
        json!({
            "status": "fail",
            "observedValue": report.pending_migrations.len(),
            "observedUnit": "pending migrations",
            "output": format!("not applied: {}", report.pending_migrations.join(", ")),
        })
    };
    let s = &report.sequencer;
    let mut sequencer = json!({
        "status": if report.sequencer_failing() { "warn" } else { "pass" },
        "observedValue": s.consecutive_failures,
        "observedUnit": "failed passes in a row",
    });
    if let Some(at) = s.last_success {
        sequencer["time"] = json!(rfc3339(DateTime::<Utc>::from(at)));
    }
    if let Some(error) = &s.last_error {
        sequencer["output"] = json!(error);
    }
    let anchoring = match &report.ledger {
        Some(Ok(l)) => json!({
            "status": if report.anchoring_behind() { "warn" } else { "pass" },
            "observedValue": l.lag_seconds,
            "observedUnit": "s",
            "lagLeaves": l.lag_leaves,
            "treeSize": l.tree_size,
            "anchoredSize": l.anchored_size,
            "worker": l.worker.code(),
            "output": l.last_error,
        }),
        Some(Err(why)) => json!({ "status": "warn", "output": why }),
        None => json!({ "status": "warn", "output": "unknown: the database did not answer" }),
    };
    checks([
        ("postgresql:connection", database),
        ("postgresql:migrations", migrations),
        ("merkle-log:sequencer", sequencer),
        ("chain:anchoring-lag", anchoring),
    ])
}

fn checks<const N: usize>(entries: [(&str, Value); N]) -> Map<String, Value> {
    entries
        .into_iter()
        .map(|(name, mut check)| {
            if let Some(o) = check.as_object_mut() {
                o.retain(|_, v| !v.is_null());
            }
            (name.to_string(), json!([check]))
        })
        .collect()
}

/// 200 `pass` (or `warn` when not `healthy`), 503 `fail` when not `up`.
fn respond(up: bool, healthy: bool, checks: Map<String, Value>) -> HttpResponse {
    let status = match (up, healthy) {
        (false, _) => "fail",
        (true, false) => "warn",
        (true, true) => "pass",
    };
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "description": "fhirledger FHIR R4 server",
        "checks": checks,
    });
    let mut response = HttpResponse::build(if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    });
    response
        .insert_header((header::CONTENT_TYPE, "application/health+json"))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    if !up {
        response.insert_header((header::RETRY_AFTER, crate::http::error::RETRY_AFTER_SECONDS));
    }
    response.body(body.to_string())
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}
