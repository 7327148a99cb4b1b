//! What a load balancer or an orchestrator asks of one server process.
//!
//! *Alive* is whether the process should be restarted: it answers HTTP and
//! its audit writers run (without them every read fails closed with 503
//! until a restart). *Ready* is whether it should be sent requests: its
//! database answers within [`PROBE_TIMEOUT`] and holds every migration this
//! build needs. The Merkle log's sequencer and the chain's anchoring lag are
//! reported with readiness but never make a process unready: requests are
//! served, audited and logged while the log waits for its sequencer or the
//! chain, and taking every replica out of a balancer because the chain node
//! is down would turn a delayed anchor into an outage.

use std::sync::Arc;
use std::time::Duration;

use crate::anchoring::{LedgerStatus, LocalAnchoring, WorkerState};
use crate::ledger::{SequencerHealth, SequencerState};
use crate::Database;

/// The longest a readiness probe waits for a database connection.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Anchoring further behind than this is reported as a warning.
pub const ANCHOR_LAG_WARNING: Duration = Duration::from_secs(60);

/// Failed sequencer passes in a row reported as a warning.
pub const SEQUENCER_FAILURES_WARNING: u32 = 3;

/// The answer to "should this process get requests?".
#[derive(Debug, Clone)]
pub struct Readiness {
    /// `Err` with the reason when no connection was had within the timeout.
    pub database: Result<(), String>,
    /// Migrations this build carries that the database lacks (unknown,
    /// and empty, when the database did not answer).
    pub pending_migrations: Vec<String>,
    /// This process's sequencer.
    pub sequencer: SequencerState,
    /// The log's anchoring, when the database answered.
    pub ledger: Option<Result<LedgerStatus, String>>,
}

impl Readiness {
    /// Ready: the database answers and its schema is current.
    pub fn is_ready(&self) -> bool {
        self.database.is_ok() && self.pending_migrations.is_empty()
    }

    /// Whether the sequencer's recent passes failed (reported, not unready).
    pub fn sequencer_failing(&self) -> bool {
        self.sequencer.consecutive_failures >= SEQUENCER_FAILURES_WARNING
    }

    /// Whether anchoring lags or no worker anchors (reported, not unready).
    pub fn anchoring_behind(&self) -> bool {
        match &self.ledger {
            Some(Ok(status)) => {
                status.lag_seconds > ANCHOR_LAG_WARNING.as_secs()
                    || status.worker != WorkerState::Anchoring
            }
            _ => true,
        }
    }
}

/// Probes the database and gathers what this process knows of its log.
/// Runs beside the request queues, not in them: a probe must not wait
/// behind the requests it is asked about, and bounds its own wait instead.
pub async fn readiness(
    db: &Database,
    sequencer: &Arc<SequencerHealth>,
    local: Option<LocalAnchoring>,
) -> Readiness {
    let store = db.store().clone();
    let sequencer = sequencer.state();
    let probed = tokio::task::spawn_blocking(move || {
        let pending = store.probe(PROBE_TIMEOUT)?;
        let ledger = store
            .ledger_snapshot()
            .map(|s| LedgerStatus::from_snapshot(&s, local))
            .map_err(|e| e.to_string());
        Ok::<_, fhirledger_postgres::StoreError>((pending, ledger))
    })
    .await;
    match probed {
        Ok(Ok((pending_migrations, ledger))) => Readiness {
            database: Ok(()),
            pending_migrations,
            sequencer,
            ledger: Some(ledger),
        },
        Ok(Err(e)) => Readiness {
            database: Err(e.to_string()),
            pending_migrations: Vec::new(),
            sequencer,
            ledger: None,
        },
        Err(_) => Readiness {
            database: Err("the probe did not finish (the server is stopping)".into()),
            pending_migrations: Vec::new(),
            sequencer,
            ledger: None,
        },
    }
}
