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

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fhir_profiles::outcome::IssueType;
use fhirledger_postgres::{AuditAppender, AuditRow};
use tokio::sync::{mpsc, oneshot};

use crate::error::{ServiceError, Status};

/// A commit carrying at least this many reads' events says the server is
/// busy: the next one lets more gather first.
const BUSY: usize = 4;

/// Reads' events waiting for a writer, at most.
const QUEUE: usize = 4096;

/// The group-commit writers of reads' events.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Pending>,
    writers: AuditWriters,
    /// The longest a read waits for its events' commit (queueing included).
    wait: Duration,
}

/// The writer threads, apart from the queue: watched by the liveness probe
/// and awaited at shutdown, without keeping the queue open.
#[derive(Clone)]
pub struct AuditWriters {
    threads: Arc<Vec<std::thread::JoinHandle<()>>>,
    /// Disconnected once every writer thread has ended (each holds a sender).
    ended: Arc<Mutex<std::sync::mpsc::Receiver<()>>>,
}

impl AuditWriters {
    /// Writer threads still running. Each ends only when the queue closes,
    /// so fewer than were started means one died (a panic): every read then
    /// risks failing closed, and the process should be restarted.
    pub fn running(&self) -> usize {
        self.threads.iter().filter(|t| !t.is_finished()).count()
    }

    /// Threads started.
    pub fn started(&self) -> usize {
        self.threads.len()
    }

    /// Waits until every writer has committed what was queued and ended,
    /// at most `within`; says whether they all did. The queue closes when
    /// the last [`AuditLog`] is dropped: at shutdown, once the HTTP server
    /// has finished its requests and dropped its state.
    pub fn finish(&self, within: Duration) -> bool {
        let deadline = std::time::Instant::now() + within;
        let Ok(ended) = self.ended.lock() else {
            return false;
        };
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match ended.recv_timeout(left) {
                Ok(()) => continue,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return false,
            }
        }
    }
}

struct Pending {
    rows: Vec<AuditRow>,
    done: oneshot::Sender<Result<(), String>>,
}

impl AuditLog {
    /// Starts `writers` writer threads, each with a connection of its own
    /// from `connect` (outside the request pool: a batch never waits for a
    /// connection behind the reads it records, nor validates one); each
    /// commits at most `max_batch` events at once. One writer makes the
    /// largest batches — everything that arrived while the previous commit
    /// ran — and so the fewest commits.
    ///
    /// A read waits at most `wait` for its events to commit, then is
    /// refused with 503 and no data: a stalled trail (a lock, a full disk,
    /// a database that stopped answering) must not hold requests forever,
    /// and must never let one through unrecorded.
    pub fn start(
        writers: usize,
        max_batch: usize,
        gather: Duration,
        wait: Duration,
        mut connect: impl FnMut() -> AuditAppender,
    ) -> std::io::Result<AuditLog> {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        let (ended_tx, ended) = std::sync::mpsc::channel::<()>();
        let mut threads = Vec::with_capacity(writers.max(1));
        for n in 0..writers.max(1) {
            let receiver = receiver.clone();
            let appender = connect();
            let ended_tx = ended_tx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("audit-writer-{n}"))
                    .spawn(move || {
                        write_batches(appender, &receiver, max_batch.max(1), gather);
                        drop(ended_tx);
                    })?,
            );
        }
        Ok(AuditLog {
            queue,
            wait,
            writers: AuditWriters {
                threads: Arc::new(threads),
                ended: Arc::new(Mutex::new(ended)),
            },
        })
    }

    /// The writer threads, for the liveness probe and the shutdown.
    pub fn writers(&self) -> AuditWriters {
        self.writers.clone()
    }

    /// Makes `rows` durable, sharing a commit with whatever else is queued;
    /// returns once they are committed. 503 when they could not be.
    pub async fn record(&self, rows: Vec<AuditRow>) -> Result<(), ServiceError> {
        if rows.is_empty() {
            return Ok(());
        }
        let (done, committed) = oneshot::channel();
        let recorded = async {
            self.queue
                .send(Pending { rows, done })
                .await
                .map_err(|_| unavailable("the audit log is not running"))?;
            match committed.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(why)) => Err(unavailable(&why)),
                Err(_) => Err(unavailable("the audit log stopped")),
            }
        };
        // Past the wait the events may still commit: the trail then shows an
        // access whose answer was refused, never an answer without its event.
        tokio::time::timeout(self.wait, recorded)
            .await
            .unwrap_or_else(|_| {
                Err(unavailable(&format!(
                    "the audit trail did not commit within {} s",
                    self.wait.as_secs_f64()
                )))
            })
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

/// One writer: takes everything queued (up to `max_batch` events) when it
/// starts a commit. Ends when every [`AuditLog`] is gone.
fn write_batches(
    mut appender: AuditAppender,
    receiver: &Mutex<mpsc::Receiver<Pending>>,
    max_batch: usize,
    gather: Duration,
) {
    let mut busy = false;
    loop {
        let batch = {
            let Ok(mut receiver) = receiver.lock() else {
                return;
            };
            let Some(first) = receiver.blocking_recv() else {
                return;
            };
            let mut size = first.rows.len();
            let mut batch = vec![first];
            let drain = |receiver: &mut mpsc::Receiver<Pending>,
                         batch: &mut Vec<Pending>,
                         size: &mut usize| {
                while *size < max_batch {
                    match receiver.try_recv() {
                        Ok(next) => {
                            *size += next.rows.len();
                            batch.push(next);
                        }
                        Err(_) => break,
                    }
                }
            };
            drain(&mut receiver, &mut batch, &mut size);
            if busy && !gather.is_zero() && size < max_batch {
                std::thread::sleep(gather);
                drain(&mut receiver, &mut batch, &mut size);
            }
            busy = batch.len() >= BUSY;
            batch
        };
        let mut rows = Vec::new();
        let mut waiting = Vec::with_capacity(batch.len());
        for pending in batch {
            rows.extend(pending.rows);
            waiting.push(pending.done);
        }
        let result = appender.append(&rows).map_err(|e| e.to_string());
        if let Err(why) = &result {
            tracing::error!(
                events = rows.len(),
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
