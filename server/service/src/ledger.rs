//! The Merkle log's sequencer: every server process runs one, and on each
//! tick whichever takes the database's sequencer lock gives the committed
//! pending leaves (a Consent version's, an AuditEvent's, written in the
//! transaction of what they describe) their indexes, extending the tree
//! (`fhirledger_postgres` `ledger`, the `merkle_log` migration). A process
//! that dies mid-pass leaves its transaction rolled back and the next tick,
//! here or elsewhere, does the pass again: nothing is lost or given twice.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::Database;

/// How often each process tries a pass. Leaves get their index within one
/// tick of their commit (plus the pass itself), well inside the second the
/// log promises, whatever the number of processes: they share the work.
pub const SEQUENCE_EVERY: Duration = Duration::from_millis(200);

/// Leaves sequenced by one pass (one transaction). A bigger backlog, after
/// an outage of the sequencers, is worked off in passes of this size back
/// to back, so no one transaction grows without bound.
pub const MAX_LEAVES_PER_PASS: usize = 20_000;

/// The longest a failing sequencer waits before its next try. A failure
/// (the database unreachable, a damaged log) is retried with a wait that
/// doubles from one tick up to this, so a lasting one neither burns a core
/// on passes that roll back nor floods the log with the same warning.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Stops the sequencer thread when dropped.
pub struct Sequencer {
    stop: Option<Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    health: Arc<SequencerHealth>,
}

impl Sequencer {
    /// What this process's sequencer last did, for the readiness probe.
    pub fn health(&self) -> Arc<SequencerHealth> {
        self.health.clone()
    }
}

impl Drop for Sequencer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How this process's sequencer fares: reported by `/health/ready`, never
/// a reason to be unready (requests are served while the log waits; its
/// leaves stay pending until a pass succeeds, here or on another process).
#[derive(Debug, Default)]
pub struct SequencerHealth {
    state: Mutex<SequencerState>,
}

/// A snapshot of [`SequencerHealth`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SequencerState {
    /// When a pass last ended without error (sequencing, finding nothing
    /// to do, or finding another process at work).
    pub last_success: Option<SystemTime>,
    /// Passes that failed since the last success.
    pub consecutive_failures: u32,
    /// The last failure's message, kept until a pass succeeds.
    pub last_error: Option<String>,
}

impl SequencerHealth {
    pub fn state(&self) -> SequencerState {
        self.lock().clone()
    }

    fn succeeded(&self) {
        let mut state = self.lock();
        state.last_success = Some(SystemTime::now());
        state.consecutive_failures = 0;
        state.last_error = None;
    }

    /// Records a failure; the number of failures in a row.
    fn failed(&self, error: String) -> u32 {
        let mut state = self.lock();
        state.consecutive_failures = state.consecutive_failures.saturating_add(1);
        state.last_error = Some(error);
        state.consecutive_failures
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SequencerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The wait before the next try after `failures` failed passes in a row:
/// one tick when all is well, then doubling up to [`MAX_BACKOFF`].
pub fn backoff(every: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.min(16);
    every.saturating_mul(factor).min(MAX_BACKOFF.max(every))
}

/// Starts this process's sequencer thread.
pub fn start_sequencer(db: Arc<Database>, every: Duration) -> std::io::Result<Sequencer> {
    let (stop, stopped) = channel::<()>();
    let health = Arc::new(SequencerHealth::default());
    let reported = health.clone();
    let thread = std::thread::Builder::new()
        .name("log-sequencer".into())
        .spawn(move || {
            let mut failures = 0;
            loop {
                match stopped.recv_timeout(backoff(every, failures)) {
                    Err(RecvTimeoutError::Timeout) => {
                        let (appended, failure) = sequence_backlog(&db);
                        if appended {
                            merge_audit_terms(&db);
                        }
                        failures = match failure {
                            None => {
                                health.succeeded();
                                0
                            }
                            Some(error) => {
                                let failures = health.failed(error.clone());
                                tracing::warn!(
                                    %error,
                                    failures,
                                    retry_in_ms = backoff(every, failures).as_millis() as u64,
                                    "sequencing the Merkle log failed; its leaves stay pending"
                                );
                                failures
                            }
                        };
                    }
                    _ => return,
                }
            }
        })?;
    Ok(Sequencer {
        stop: Some(stop),
        thread: Some(thread),
        health: reported,
    })
}

/// Passes until the backlog is gone, another process holds the lock, or
/// the database fails. Says whether this process sequenced new leaves, and
/// the failure that ended the passes, if one did.
fn sequence_backlog(db: &Database) -> (bool, Option<String>) {
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
                return (appended || pass.appended > 0, None);
            }
            Ok(None) => return (appended, None),
            Err(e) => return (appended, Some(e.to_string())),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_sequencer_waits_longer_each_time_up_to_the_cap() {
        let tick = Duration::from_millis(200);
        assert_eq!(backoff(tick, 0), tick);
        assert_eq!(backoff(tick, 1), Duration::from_millis(400));
        assert_eq!(backoff(tick, 3), Duration::from_millis(1600));
        assert_eq!(backoff(tick, 6), MAX_BACKOFF);
        assert_eq!(backoff(tick, u32::MAX), MAX_BACKOFF);
        // A tick longer than the cap is never shortened.
        assert_eq!(backoff(Duration::from_secs(30), 2), Duration::from_secs(30));
    }

    #[test]
    fn the_health_of_the_sequencer_says_how_many_passes_failed_until_one_succeeds() {
        let health = SequencerHealth::default();
        assert_eq!(health.state(), SequencerState::default());
        assert_eq!(health.failed("database down".into()), 1);
        assert_eq!(health.failed("database still down".into()), 2);
        let state = health.state();
        assert_eq!(state.consecutive_failures, 2);
        assert_eq!(state.last_error.as_deref(), Some("database still down"));
        health.succeeded();
        let state = health.state();
        assert_eq!(state.consecutive_failures, 0);
        assert_eq!(state.last_error, None);
        assert!(state.last_success.is_some());
    }
}
