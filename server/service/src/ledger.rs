//! The Merkle log's sequencer: every server process runs one, and on each
//! tick whichever takes the database's sequencer lock gives the committed
//! pending leaves (a Consent version's, an AuditEvent's, written in the
//! transaction of what they describe) their indexes, extending the tree
//! (`fhirledger_postgres` `ledger`, the `merkle_log` migration). A process
//! that dies mid-pass leaves its transaction rolled back and the next tick,
//! here or elsewhere, does the pass again: nothing is lost or given twice.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

use crate::Database;

/// How often each process tries a pass. Leaves get their index within one
/// tick of their commit (plus the pass itself), well inside the second the
/// log promises, whatever the number of processes: they share the work.
pub const SEQUENCE_EVERY: Duration = Duration::from_millis(200);

/// Leaves sequenced by one pass (one transaction). A bigger backlog, after
/// an outage of the sequencers, is worked off in passes of this size back
/// to back, so no one transaction grows without bound.
pub const MAX_LEAVES_PER_PASS: usize = 20_000;

/// Stops the sequencer thread when dropped.
pub struct Sequencer {
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Sequencer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts this process's sequencer thread.
pub fn start_sequencer(db: Arc<Database>, every: Duration) -> std::io::Result<Sequencer> {
    let (stop, stopped) = channel::<()>();
    let thread = std::thread::Builder::new()
        .name("log-sequencer".into())
        .spawn(move || loop {
            match stopped.recv_timeout(every) {
                Err(RecvTimeoutError::Timeout) => {
                    if sequence_backlog(&db) {
                        merge_audit_terms(&db);
                    }
                }
                _ => return,
            }
        })?;
    Ok(Sequencer {
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Passes until the backlog is gone, another process holds the lock, or
/// the database fails (logged; the next tick tries again). Says whether
/// this process sequenced new leaves.
fn sequence_backlog(db: &Database) -> bool {
    let mut appended = false;
    loop {
        match db.store().sequence_log(MAX_LEAVES_PER_PASS) {
            Ok(Some(pass)) if pass.appended as usize == MAX_LEAVES_PER_PASS => {
                appended = true;
                tracing::debug!(tree_size = pass.tree_size, "log backlog: another pass");
            }
            Ok(Some(pass)) => {
                if pass.appended > 0 {
                    tracing::trace!(
                        appended = pass.appended,
                        tree_size = pass.tree_size,
                        "log sequenced"
                    );
                }
                return appended || pass.appended > 0;
            }
            Ok(None) => return appended,
            Err(e) => {
                tracing::warn!(error = %e, "sequencing the Merkle log failed; retrying next tick");
                return appended;
            }
        }
    }
}

/// Merges the audit events' new search terms into their index, after a
/// pass that sequenced new leaves (every event is one, so no new leaves
/// means no new terms), by the process that ran it: one process a tick.
/// A failure costs nothing but speed: the next append to overflow the list
/// merges it, as autovacuum does.
fn merge_audit_terms(db: &Database) {
    match db.store().merge_audit_terms() {
        Ok(pages) => tracing::trace!(pages, "audit terms merged into their index"),
        Err(e) => tracing::warn!(error = %e, "merging the audit trail's new search terms failed"),
    }
}
