//! Reads' AuditEvents are durable before their responses leave, and share
//! commits (group commit): [`AuditLog::record`] queues a read's events and
//! waits until a writer has committed them; writers take everything queued
//! when they start a commit (up to `max_batch` events), so under load one
//! commit carries the events of many reads, and with no load an event waits
//! for no one. A failed commit fails every read of its batch: the caller
//! answers 503 and sends no data (fail closed).
//!
//! Writes do not come here: a write's event commits in the write's own
//! transaction (`fhirledger_postgres::Tx::append_audit_events`).

use std::sync::Arc;

use fhir_profiles::outcome::IssueType;
use fhirledger_postgres::AuditRow;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::database::Database;
use crate::error::{ServiceError, Status};

/// Reads' events waiting for a writer, at most.
const QUEUE: usize = 4096;

/// The group-commit writers of reads' events.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Pending>,
}

struct Pending {
    rows: Vec<AuditRow>,
    done: oneshot::Sender<Result<(), String>>,
}

impl AuditLog {
    /// Starts `writers` writer tasks on the current tokio runtime; each
    /// commits at most `max_batch` events at once. Two writers let one batch
    /// collect while the other commits.
    pub fn start(database: Arc<Database>, writers: usize, max_batch: usize) -> AuditLog {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..writers.max(1) {
            tokio::spawn(write_batches(
                database.clone(),
                receiver.clone(),
                max_batch.max(1),
            ));
        }
        AuditLog { queue }
    }

    /// Makes `rows` durable, sharing a commit with whatever else is queued;
    /// returns once they are committed. 503 when they could not be.
    pub async fn record(&self, rows: Vec<AuditRow>) -> Result<(), ServiceError> {
        if rows.is_empty() {
            return Ok(());
        }
        let (done, committed) = oneshot::channel();
        self.queue
            .send(Pending { rows, done })
            .await
            .map_err(|_| unavailable("the audit log is not running"))?;
        match committed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(unavailable(&why)),
            Err(_) => Err(unavailable("the audit log stopped")),
        }
    }
}

fn unavailable(why: &str) -> ServiceError {
    tracing::error!(why, "an access could not be audited: refused");
    ServiceError::new(
        Status::SERVICE_UNAVAILABLE,
        IssueType::Transient,
        format!(
            "this access could not be recorded in the audit trail, so nothing is returned; \
             try again ({why})"
        ),
    )
}

async fn write_batches(
    database: Arc<Database>,
    receiver: Arc<Mutex<mpsc::Receiver<Pending>>>,
    max_batch: usize,
) {
    loop {
        let batch = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
            let mut size = first.rows.len();
            let mut batch = vec![first];
            while size < max_batch {
                match receiver.try_recv() {
                    Ok(next) => {
                        size += next.rows.len();
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        let mut rows = Vec::new();
        let mut waiting = Vec::with_capacity(batch.len());
        for pending in batch {
            rows.extend(pending.rows);
            waiting.push(pending.done);
        }
        let count = rows.len();
        let result: Result<(), ServiceError> = database
            .run(move |store| store.append_audit_events(&rows).map_err(ServiceError::from))
            .await;
        let result = result.map_err(|e| e.to_string());
        if let Err(why) = &result {
            tracing::error!(
                events = count,
                why,
                "a batch of audit events did not commit"
            );
        }
        for done in waiting {
            // A reader that went away no longer waits: nothing to tell it.
            let _ = done.send(result.clone());
        }
    }
}
