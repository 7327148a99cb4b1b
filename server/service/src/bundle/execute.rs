//! Running a plan: the order of work for a transaction (all writes in one
//! database transaction, then the reads) and for a batch (each entry on its
//! own, in order).

use fhirledger_postgres::PgStore;
use serde_json::Value;

use super::errors::at_entry;
use super::planned::Planned;
use super::reads::run_read;
use super::response::{response_bundle, Done};
use super::writes::run_writes;
use super::{BundleKind, BundleOptions, Plan};
use crate::error::ServiceError;
use fhirledger_audit::Interaction;

/// Runs a plan and returns the `batch-response` or `transaction-response`
/// Bundle; a failed transaction is the failing entry's error. Blocking.
pub fn execute(
    store: &PgStore,
    plan: Plan,
    options: &BundleOptions,
) -> Result<Value, ServiceError> {
    let results = match plan.kind {
        BundleKind::Transaction => run_transaction(store, &plan, options)?,
        BundleKind::Batch => run_batch(store, &plan, options),
    };
    audit(&plan, &results, options);
    Ok(response_bundle(plan.kind, results, options))
}

/// The Bundle's own AuditEvent, and one for each entry that failed (each
/// entry that read or wrote has its own already; a transaction that fails
/// is one refusal of the whole, recorded by the HTTP layer).
fn audit(plan: &Plan, results: &[Option<Done>], options: &BundleOptions) {
    let Some(recorder) = options.guard.recorder() else {
        return;
    };
    let caller = options.guard.caller();
    for (i, done) in results.iter().enumerate() {
        let Some(Done::Failed(e)) = done else {
            continue;
        };
        let (interaction, target) = plan
            .requested
            .get(i)
            .cloned()
            .unwrap_or((Interaction::Batch, None));
        let why = e
            .issues
            .first()
            .map(|issue| format!("entry {i}: {}", issue.diagnostics))
            .unwrap_or_else(|| format!("entry {i}"));
        recorder.refused(caller, interaction, e.status.code(), &why, target, None);
    }
    let interaction = match plan.kind {
        BundleKind::Transaction => Interaction::Transaction,
        BundleKind::Batch => Interaction::Batch,
    };
    recorder.read(caller, interaction, &[], None);
}

/// Every write in ONE database transaction (any failure rolls all back and
/// is the answer, located at its entry), then the GET/HEAD entries.
fn run_transaction(
    store: &PgStore,
    plan: &Plan,
    options: &BundleOptions,
) -> Result<Vec<Option<Done>>, ServiceError> {
    let mut results: Vec<Option<Done>> = (0..plan.entries.len()).map(|_| None).collect();
    let writes: Vec<(usize, &Planned)> = plan
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.as_ref().ok().map(|p| (i, p)))
        .filter(|(_, p)| p.is_write())
        .collect();
    if !writes.is_empty() {
        let done = store
            .transaction(|tx| {
                run_writes(
                    tx,
                    &writes,
                    &plan.entries,
                    Some(&plan.by_identifier),
                    options,
                )
            })
            .map_err(|f| match f.index {
                Some(i) => {
                    let rt = plan.entries[i]
                        .as_ref()
                        .ok()
                        .map(|p| p.resource_type().to_string());
                    at_entry(f.error, i, rt.as_deref())
                }
                None => f.error,
            })?;
        for (i, d) in done {
            results[i] = Some(d);
        }
    }
    for (i, p) in plan.entries.iter().enumerate() {
        if let Ok(p) = p {
            if !p.is_write() {
                results[i] = Some(run_read(store, p, options, i));
            }
        }
    }
    Ok(results)
}

/// Each entry on its own, in order: a write in its own database
/// transaction; a failure is that entry's outcome only.
fn run_batch(store: &PgStore, plan: &Plan, options: &BundleOptions) -> Vec<Option<Done>> {
    let mut results = Vec::with_capacity(plan.entries.len());
    for (i, p) in plan.entries.iter().enumerate() {
        let done = match p {
            Err(e) => Done::Failed(ServiceError::with_issues(e.status, e.issues.clone())),
            Ok(p) if p.is_write() => {
                let one = [(i, p)];
                match store.transaction(|tx| run_writes(tx, &one, &plan.entries, None, options)) {
                    Ok(mut done) => done
                        .pop()
                        .map(|(_, d)| d)
                        .unwrap_or_else(|| Done::Failed(ServiceError::internal("no outcome"))),
                    Err(f) => Done::Failed(at_entry(f.error, i, Some(p.resource_type()))),
                }
            }
            Ok(p) => run_read(store, p, options, i),
        };
        results.push(Some(done));
    }
    results
}
