//! The anchoring worker: writes the Merkle log's tree head `(treeSize, root)`
//! to the chain's `AuditAnchor` contract and records each checkpoint in the
//! store once its receipt is final; and `$ledger-status`, what it reports.
//!
//! The chain is reached through [`AnchorChain`], a trait this crate owns with
//! plain types, so the service depends on no chain library: the binary
//! implements it over `fhirledger_chain::AnchorClient` (ethers).
//!
//! # Where it runs
//!
//! [`AnchorWorker::start`] runs the worker on a thread of its own with its own
//! single-threaded async runtime and its own database connection
//! ([`AnchorSession`], outside the pool): no request ever waits for the chain
//! or for the worker's statements. With the chain node down, requests keep
//! their speed and leaves keep being appended; the worker retries and catches
//! up when the node returns.
//!
//! # Leadership
//!
//! Every process configured for the chain starts a worker; only the one
//! holding the session advisory lock ([`AnchorSession::try_lead`]) anchors.
//! The others ask for the lock every second, so when the leader dies (its
//! connection, and so its lock, goes with it) another takes over within
//! seconds.
//!
//! # One transaction in flight
//!
//! A checkpoint transaction is recorded in the store (`merkle_anchor_inflight`:
//! size, root, nonce) *before* it is sent, its hash once the node accepted it,
//! and the worker waits for its receipt before deciding anything else. The
//! next checkpoint is the head as it is then: after `interval` since the last
//! one, or as soon as `max_leaves` leaves are waiting, whichever comes first.
//!
//! # Reconciliation
//!
//! On start, after any error, and before every checkpoint, the worker reads
//! what it needs ([`Observed`]) and [`decide`] (pure, unit-tested) says what
//! to do. Its rules, in order:
//!
//! 1. No code at the contract address → **chain-mismatch** (a reset chain or
//!    a wrong address).
//! 2. With a checkpoint recorded here (size `s`, root `r`): the chain's
//!    latest size below `s`, or `rootAt(s) ≠ r` → **chain-mismatch** (a reset
//!    chain, or another contract); our log shorter than `s` → **chain-mismatch**
//!    (a restored database).
//! 3. The chain's latest size `c` above `s` (a checkpoint we sent but did not
//!    record: a crash after sending, or waiting for confirmations): beyond our
//!    log, or its root differs from our tree's root at `c` → **chain-mismatch**;
//!    else record it from the chain (its `Checkpoint` event, then its receipt
//!    once final).
//! 4. The chain at `s`, a transaction in flight: for a size ≤ `s`, forget it;
//!    its nonce below the account's confirmed nonce (the nonce is used and the
//!    chain does not hold the checkpoint: replaced, dropped, or reverted) →
//!    forget it and decide again; no hash yet (a crash while sending), or the
//!    node's pool no longer has it → send the same checkpoint at the same nonce
//!    again (deterministic signing gives the same transaction); else wait for
//!    its receipt.
//! 5. Nothing in flight: the head above `c` → anchor the head (when the
//!    interval or the leaf count says so); else idle.
//!
//! In a mismatch the worker never writes to the chain, logs an error, shows
//! `chain-mismatch` in `$ledger-status`, and checks again every
//! [`MISMATCH_RECHECK`]. Because the contract refuses a size that is not
//! above its latest, two workers racing (a leader that lost its connection
//! mid-send) can never anchor two roots for one size.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use fhirledger_access::{Interaction, Role};
use fhirledger_merkle::{frontier_nodes, hex_0x, range_hash, Hasher, Keccak256Hasher};
use fhirledger_postgres::anchors::{CheckpointRow, InflightRow, TreeHead};
use fhirledger_postgres::{AnchorSession, LedgerSnapshot, PgStore, StoreError};
use serde_json::{json, Value};

use crate::error::ServiceError;
use crate::guard::Guard;

/// A 32-byte hash: a root, a transaction hash, a block hash.
pub type Hash32 = [u8; 32];
/// A 20-byte contract or account address.
pub type Address20 = [u8; 20];

/// How often a mismatch is checked again (and logged).
pub const MISMATCH_RECHECK: Duration = Duration::from_secs(10);
/// How often a standby asks for the leadership.
const STANDBY_POLL: Duration = Duration::from_secs(1);
/// How often the head is looked at while waiting for the next checkpoint.
const HEAD_POLL: Duration = Duration::from_millis(100);
/// How often a receipt is asked for. Every leaf waits for the receipt in
/// flight and then for its own, so each poll's delay counts twice in the
/// anchoring lag; one small eth_getTransactionReceipt every 100 ms is
/// nothing to a node.
const RECEIPT_POLL: Duration = Duration::from_millis(100);
/// How long a receipt is waited for before reconciling again.
const RECEIPT_PATIENCE: Duration = Duration::from_secs(30);
/// Longest pause between retries while the chain is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// An idle leader reconciles this often (a chain reset shows in health).
const IDLE_RECHECK: Duration = Duration::from_secs(30);
/// How often an unchanged state is published again (the heartbeat
/// `$ledger-status` reads on other replicas).
const STATUS_HEARTBEAT: Duration = Duration::from_secs(5);
/// A published state older than this is no one's: its worker is gone.
pub const STATUS_FRESHNESS: chrono::Duration = chrono::Duration::seconds(30);

/// What went wrong talking to the chain, in the worker's terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainFault {
    /// The node is down, slow, or answered with an error: retry later.
    #[error("chain unavailable: {0}")]
    Unavailable(String),
    /// The chain is not the one our checkpoints are on (another chain id, no
    /// contract code): never write.
    #[error("chain mismatch: {0}")]
    Mismatch(String),
    /// The contract refused a checkpoint because its size is not above the
    /// latest anchored one (already anchored).
    #[error("already anchored: {0}")]
    AlreadyAnchored(String),
    /// The contract or node refused for another reason (not a writer, a
    /// failed transaction): retried later, loudly.
    #[error("refused: {0}")]
    Refused(String),
}

/// A transaction's receipt, once final (mined and confirmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainReceipt {
    pub block_number: u64,
    pub block_hash: Hash32,
    /// Status 1.
    pub success: bool,
}

/// The chain as the worker needs it: the `AuditAnchor` contract and the
/// writer account's nonces. Implemented by the binary over the chain adapter;
/// nothing in it is specific to one node implementation.
pub trait AnchorChain: Send + Sync + 'static {
    /// The configured chain id (every transaction is signed for it).
    fn chain_id(&self) -> u64;
    /// The contract's address.
    fn contract(&self) -> Address20;
    /// Whether the contract address holds code; a chain id other than the
    /// configured one is [`ChainFault::Mismatch`].
    fn has_code(&self) -> impl Future<Output = Result<bool, ChainFault>> + Send;
    /// The last anchored checkpoint, `(0, [0; 32])` before the first.
    fn latest(&self) -> impl Future<Output = Result<(u64, Hash32), ChainFault>> + Send;
    /// The root anchored for `tree_size`, zero when none was.
    fn root_at(&self, tree_size: u64) -> impl Future<Output = Result<Hash32, ChainFault>> + Send;
    /// The writer account's next nonce counting mined transactions only, and
    /// counting those in the node's pool too: `(confirmed, pending)`.
    fn nonces(&self) -> impl Future<Output = Result<(u64, u64), ChainFault>> + Send;
    /// Signs `checkpoint(tree_size, root)` at `nonce` (deterministically: the
    /// same arguments give the same transaction) and sends it; its hash.
    fn send_checkpoint(
        &self,
        tree_size: u64,
        root: Hash32,
        nonce: u64,
    ) -> impl Future<Output = Result<Hash32, ChainFault>> + Send;
    /// The receipt once the transaction is mined and confirmed, else `None`.
    fn receipt(
        &self,
        tx: Hash32,
    ) -> impl Future<Output = Result<Option<ChainReceipt>, ChainFault>> + Send;
    /// The transaction that anchored `tree_size`, from the contract's
    /// `Checkpoint` events from block `from_block` on.
    fn find_checkpoint(
        &self,
        tree_size: u64,
        from_block: u64,
    ) -> impl Future<Output = Result<Option<Hash32>, ChainFault>> + Send;
}

/// The contract's checkpoints read without a key, for whoever checks a
/// proof against the chain itself rather than against the server's record
/// of what it anchored (the portal's proof pages). Object-safe, so the
/// binary can hand the portal one without it knowing the adapter.
pub trait ChainRoots: Send + Sync + std::fmt::Debug {
    /// The chain this reads (the configured id).
    fn chain_id(&self) -> u64;
    /// The contract this reads.
    fn contract(&self) -> Address20;
    /// The root the contract holds for `tree_size`, zero when none.
    fn root_at(
        &self,
        tree_size: u64,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Hash32, ChainFault>> + Send + '_>>;
}

/// When to anchor.
#[derive(Debug, Clone, Copy)]
pub struct AnchorSettings {
    /// At most this long between the head growing and its checkpoint.
    pub interval: Duration,
    /// Anchor as soon as this many leaves wait, without waiting for `interval`.
    pub max_leaves: u64,
}

/// The worker's state as `$ledger-status` shows it (`worker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// The leader reaches the chain and anchors (or is caught up).
    Anchoring,
    /// The chain cannot be reached (or anchoring is not configured: then
    /// `chainId` is absent).
    WaitingForChain,
    /// No worker is anchoring: this process waits for the leadership.
    Standby,
    /// The chain does not hold our checkpoints: nothing is written.
    ChainMismatch,
}

impl WorkerState {
    pub fn code(self) -> &'static str {
        match self {
            WorkerState::Anchoring => "anchoring",
            WorkerState::WaitingForChain => "waiting-for-chain",
            WorkerState::Standby => "standby",
            WorkerState::ChainMismatch => "chain-mismatch",
        }
    }

    fn from_code(code: &str) -> Option<WorkerState> {
        [
            WorkerState::Anchoring,
            WorkerState::WaitingForChain,
            WorkerState::Standby,
            WorkerState::ChainMismatch,
        ]
        .into_iter()
        .find(|s| s.code() == code)
    }
}

/// A transaction in flight, as [`decide`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inflight {
    pub tree_size: u64,
    pub root: Hash32,
    pub tx: Option<Hash32>,
    pub nonce: u64,
}

/// What reconciliation reads before deciding. The nonces are read before
/// `latest()`, so a transaction counted as mined is visible in `latest()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// Our log's size.
    pub head_size: u64,
    /// The last checkpoint recorded in the store.
    pub recorded: Option<(u64, Hash32)>,
    pub has_code: bool,
    /// The contract's `latest()`.
    pub chain_latest: (u64, Hash32),
    /// The contract's `rootAt(recorded size)`, when a checkpoint is recorded.
    pub chain_root_at_recorded: Option<Hash32>,
    /// Our tree's root at the chain's latest size, when that size is above
    /// the recorded one and within our log.
    pub our_root_at_chain_size: Option<Hash32>,
    pub inflight: Option<Inflight>,
    pub confirmed_nonce: u64,
    pub pending_nonce: u64,
}

/// What to do next (the module's "Reconciliation" rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Never write; say why.
    Mismatch(String),
    /// The chain holds a checkpoint of ours not recorded yet: record it.
    RecordFromChain { tree_size: u64, root: Hash32 },
    /// Wait for the receipt of the transaction in flight.
    AwaitReceipt { tx: Hash32 },
    /// Send the transaction in flight again, same size, root and nonce.
    Resend(Inflight),
    /// Forget the transaction in flight.
    DropInflight(String),
    /// Anchor the head.
    Anchor,
    /// Caught up.
    Idle,
}

/// The reconciliation rules (module docs), as a pure function.
pub fn decide(o: &Observed) -> Decision {
    if !o.has_code {
        return Decision::Mismatch("no contract code at the configured address".into());
    }
    let (chain_size, chain_root) = o.chain_latest;
    let recorded_size = o.recorded.map(|(s, _)| s).unwrap_or(0);
    if let Some((size, root)) = o.recorded {
        if chain_size < size {
            return Decision::Mismatch(format!(
                "the contract's latest checkpoint is at size {chain_size}, below our recorded checkpoint at {size} (a reset chain or another contract)"
            ));
        }
        if o.chain_root_at_recorded != Some(root) {
            return Decision::Mismatch(format!(
                "the contract's root at size {size} is not the one we recorded"
            ));
        }
        if o.head_size < size {
            return Decision::Mismatch(format!(
                "our log has {} leaves, fewer than the recorded checkpoint at {size} (a restored database?)",
                o.head_size
            ));
        }
    }
    if chain_size > recorded_size {
        if chain_size > o.head_size {
            return Decision::Mismatch(format!(
                "the contract holds a checkpoint at size {chain_size}, beyond our log of {} leaves",
                o.head_size
            ));
        }
        if o.our_root_at_chain_size != Some(chain_root) {
            return Decision::Mismatch(format!(
                "the contract's root at size {chain_size} is not our tree's root at that size"
            ));
        }
        return Decision::RecordFromChain {
            tree_size: chain_size,
            root: chain_root,
        };
    }
    if let Some(f) = o.inflight {
        if f.tree_size <= chain_size {
            return Decision::DropInflight(format!("size {} is already anchored", f.tree_size));
        }
        if f.nonce < o.confirmed_nonce {
            return Decision::DropInflight(format!(
                "nonce {} is used but the chain does not hold size {} (replaced, dropped or reverted)",
                f.nonce, f.tree_size
            ));
        }
        return match f.tx {
            Some(tx) if o.pending_nonce > f.nonce => Decision::AwaitReceipt { tx },
            _ => Decision::Resend(f),
        };
    }
    if o.head_size > chain_size {
        Decision::Anchor
    } else {
        Decision::Idle
    }
}

/// Why a step of the worker stopped.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Chain(#[from] ChainFault),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// The running worker; dropping it stops the thread (within a poll interval).
pub struct AnchorWorker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for AnchorWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchorWorker").finish_non_exhaustive()
    }
}

impl AnchorWorker {
    /// Starts the worker on a thread of its own.
    pub fn start<C: AnchorChain>(
        chain: C,
        session: AnchorSession,
        settings: AnchorSettings,
    ) -> std::io::Result<AnchorWorker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("fhirledger-anchoring".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the anchoring worker's runtime");
                        return;
                    }
                };
                let mut worker = Worker {
                    chain,
                    session,
                    settings,
                    stop: flag,
                    published: None,
                    last_anchor: Instant::now(),
                };
                runtime.block_on(worker.run());
            })?;
        Ok(AnchorWorker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for AnchorWorker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Worker<C> {
    chain: C,
    session: AnchorSession,
    settings: AnchorSettings,
    stop: Arc<AtomicBool>,
    /// The state last published, with when.
    published: Option<(WorkerState, Option<String>, Instant)>,
    /// When the last checkpoint was recorded (or the worker started).
    last_anchor: Instant,
}

/// What one reconciliation step did.
enum Stepped {
    /// Something changed: decide again at once.
    Progress,
    /// Caught up.
    Idle,
    /// The head is ahead of the chain; anchoring waits for the trigger.
    AnchorDue,
    /// The chain is not ours.
    Mismatch(String),
}

impl<C: AnchorChain> Worker<C> {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sleeps up to `d`, waking early when stopped.
    async fn pause(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopped() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(Duration::from_millis(100))).await;
        }
    }

    fn publish(&mut self, state: WorkerState, error: Option<String>) {
        let unchanged = matches!(&self.published, Some((s, e, at))
            if *s == state && *e == error && at.elapsed() < STATUS_HEARTBEAT);
        if unchanged {
            return;
        }
        let result = self.session.put_status(
            state.code(),
            Some(self.chain.chain_id()),
            Some(self.chain.contract()),
            error.as_deref(),
        );
        match result {
            Ok(()) => self.published = Some((state, error, Instant::now())),
            Err(e) => tracing::warn!(error = %e, "cannot publish the anchoring state"),
        }
    }

    async fn run(&mut self) {
        tracing::info!(
            chain_id = self.chain.chain_id(),
            contract = %hex_0x(&self.chain.contract()),
            interval_ms = self.settings.interval.as_millis() as u64,
            max_leaves = self.settings.max_leaves,
            "anchoring worker started"
        );
        let mut backoff = Duration::from_millis(500);
        let mut was_leading = false;
        while !self.stopped() {
            match self.session.try_lead() {
                Ok(true) => {
                    if !was_leading {
                        tracing::info!(
                            "this process anchors the Merkle log (it holds the anchoring lock)"
                        );
                        was_leading = true;
                        self.published = None;
                    }
                }
                Ok(false) => {
                    was_leading = false;
                    self.pause(STANDBY_POLL).await;
                    continue;
                }
                Err(e) => {
                    if was_leading {
                        tracing::warn!(error = %e, "lost the anchoring connection; standing by");
                    }
                    was_leading = false;
                    self.pause(STANDBY_POLL).await;
                    continue;
                }
            }
            match self.step().await {
                Ok(Stepped::Progress) => {
                    backoff = Duration::from_millis(500);
                    self.publish(WorkerState::Anchoring, None);
                }
                Ok(Stepped::Idle) => {
                    backoff = Duration::from_millis(500);
                    self.publish(WorkerState::Anchoring, None);
                    self.wait_for_head(true).await;
                }
                Ok(Stepped::AnchorDue) => {
                    backoff = Duration::from_millis(500);
                    self.publish(WorkerState::Anchoring, None);
                    self.wait_for_head(false).await;
                    if !self.stopped() {
                        if let Err(e) = self.anchor_now().await {
                            self.on_error(e, &mut backoff).await;
                        }
                    }
                }
                Ok(Stepped::Mismatch(why)) => {
                    tracing::error!(
                        reason = %why,
                        chain_id = self.chain.chain_id(),
                        contract = %hex_0x(&self.chain.contract()),
                        "CHAIN MISMATCH: the chain does not hold this log's checkpoints; nothing will be written to it"
                    );
                    self.publish(WorkerState::ChainMismatch, Some(why));
                    self.pause(MISMATCH_RECHECK).await;
                }
                Err(e) => self.on_error(e, &mut backoff).await,
            }
        }
        self.session.resign();
        tracing::info!("anchoring worker stopped");
    }

    async fn on_error(&mut self, e: StepError, backoff: &mut Duration) {
        match e {
            StepError::Chain(ChainFault::Mismatch(why)) => {
                tracing::error!(reason = %why, "CHAIN MISMATCH: nothing will be written to the chain");
                self.publish(WorkerState::ChainMismatch, Some(why));
                self.pause(MISMATCH_RECHECK).await;
            }
            StepError::Chain(fault @ ChainFault::Refused(_)) => {
                tracing::error!(error = %fault, retry_ms = backoff.as_millis() as u64, "the chain refused a checkpoint (is the key a writer of the contract?)");
                self.publish(WorkerState::WaitingForChain, Some(fault.to_string()));
                self.pause(*backoff).await;
                *backoff = (*backoff * 2).min(MAX_BACKOFF);
            }
            StepError::Chain(fault) => {
                tracing::warn!(error = %fault, retry_ms = backoff.as_millis() as u64, "anchoring waits for the chain");
                self.publish(WorkerState::WaitingForChain, Some(fault.to_string()));
                self.pause(*backoff).await;
                *backoff = (*backoff * 2).min(MAX_BACKOFF);
            }
            StepError::Store(e) => {
                tracing::warn!(error = %e, "anchoring: database error; starting over");
                self.pause(STANDBY_POLL).await;
            }
        }
    }

    /// Waits until a checkpoint is due: the head grew and either `interval`
    /// passed since the last checkpoint or `max_leaves` leaves wait. When
    /// `idle`, also returns after [`IDLE_RECHECK`] to reconcile again.
    async fn wait_for_head(&mut self, idle: bool) {
        let since = Instant::now();
        loop {
            if self.stopped() || (idle && since.elapsed() >= IDLE_RECHECK) {
                return;
            }
            let anchored = match self.session.last_checkpoint() {
                Ok(c) => c.map(|c| c.tree_size).unwrap_or(0),
                Err(_) => return,
            };
            match self.session.head() {
                Ok(head) if head.tree_size > anchored => {
                    let waiting = head.tree_size - anchored;
                    if waiting >= self.settings.max_leaves
                        || self.last_anchor.elapsed() >= self.settings.interval
                    {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
            // The heartbeat other replicas read (publish skips unchanged states in between).
            self.publish(WorkerState::Anchoring, None);
            self.pause(HEAD_POLL).await;
        }
    }

    /// Our tree's root at `size` (the head's when it is the head).
    fn our_root(&mut self, head: &TreeHead, size: u64) -> Result<Option<Hash32>, StoreError> {
        if size == head.tree_size {
            return Ok(Some(head.root));
        }
        if size > head.tree_size {
            return Ok(None);
        }
        if size == 0 {
            return Ok(Some(Keccak256Hasher.empty_root()));
        }
        let wanted: Vec<(u8, u64)> = frontier_nodes(size)
            .into_iter()
            .map(|n| (n.level, n.index))
            .collect();
        Ok(self
            .session
            .frontier_hashes(&wanted)?
            .and_then(|hashes| range_hash(&Keccak256Hasher, &hashes)))
    }

    async fn observe(
        &mut self,
    ) -> Result<
        (
            Observed,
            TreeHead,
            Option<CheckpointRow>,
            Option<InflightRow>,
        ),
        StepError,
    > {
        let head = self.session.head()?;
        let recorded = self.session.last_checkpoint()?;
        let inflight = self.session.inflight()?;
        let has_code = self.chain.has_code().await?;
        if !has_code {
            let observed = Observed {
                head_size: head.tree_size,
                recorded: recorded.map(|c| (c.tree_size, c.root)),
                has_code,
                chain_latest: (0, [0; 32]),
                chain_root_at_recorded: None,
                our_root_at_chain_size: None,
                inflight: None,
                confirmed_nonce: 0,
                pending_nonce: 0,
            };
            return Ok((observed, head, recorded, inflight));
        }
        // Nonces before latest(): a transaction counted as mined shows in latest().
        let (confirmed_nonce, pending_nonce) = self.chain.nonces().await?;
        let chain_latest = self.chain.latest().await?;
        let chain_root_at_recorded = match &recorded {
            Some(c) => Some(self.chain.root_at(c.tree_size).await?),
            None => None,
        };
        let recorded_size = recorded.map(|c| c.tree_size).unwrap_or(0);
        let our_root_at_chain_size = if chain_latest.0 > recorded_size {
            self.our_root(&head, chain_latest.0)?
        } else {
            None
        };
        let observed = Observed {
            head_size: head.tree_size,
            recorded: recorded.map(|c| (c.tree_size, c.root)),
            has_code,
            chain_latest,
            chain_root_at_recorded,
            our_root_at_chain_size,
            inflight: inflight.map(|f| Inflight {
                tree_size: f.tree_size,
                root: f.root,
                tx: f.tx_hash,
                nonce: f.nonce,
            }),
            confirmed_nonce,
            pending_nonce,
        };
        Ok((observed, head, recorded, inflight))
    }

    /// One reconciliation: observe, decide, act.
    async fn step(&mut self) -> Result<Stepped, StepError> {
        let (observed, _head, recorded, inflight) = self.observe().await?;
        let decision = decide(&observed);
        tracing::debug!(?decision, ?observed, "anchoring decision");
        match decision {
            Decision::Mismatch(why) => Ok(Stepped::Mismatch(why)),
            Decision::Idle => Ok(Stepped::Idle),
            Decision::Anchor => Ok(Stepped::AnchorDue),
            Decision::DropInflight(why) => {
                tracing::warn!(reason = %why, "forgetting the checkpoint transaction in flight");
                self.session.clear_inflight()?;
                Ok(Stepped::Progress)
            }
            Decision::RecordFromChain { tree_size, root } => {
                let known = inflight
                    .filter(|f| f.tree_size == tree_size && f.root == root)
                    .and_then(|f| f.tx_hash);
                let tx = match known {
                    Some(tx) => Some(tx),
                    None => {
                        let from = recorded.map(|c| c.block_number).unwrap_or(0);
                        self.chain.find_checkpoint(tree_size, from).await?
                    }
                };
                let Some(tx) = tx else {
                    return Err(ChainFault::Unavailable(format!(
                        "the contract holds size {tree_size} but its Checkpoint event was not found"
                    ))
                    .into());
                };
                if self.await_and_record(tree_size, root, tx).await? {
                    tracing::info!(tree_size, tx = %hex_0x(&tx), "recorded a checkpoint found on chain");
                }
                Ok(Stepped::Progress)
            }
            Decision::AwaitReceipt { tx } => {
                let Some(f) = inflight else {
                    return Ok(Stepped::Progress);
                };
                self.await_and_record(f.tree_size, f.root, tx).await?;
                Ok(Stepped::Progress)
            }
            Decision::Resend(f) => {
                tracing::info!(
                    tree_size = f.tree_size,
                    nonce = f.nonce,
                    "sending the checkpoint in flight again"
                );
                self.send(f.tree_size, f.root, f.nonce).await?;
                Ok(Stepped::Progress)
            }
        }
    }

    /// Anchors the head as it is now (a fresh reconciliation first).
    async fn anchor_now(&mut self) -> Result<(), StepError> {
        let (observed, head, _, _) = self.observe().await?;
        if decide(&observed) != Decision::Anchor {
            return Ok(());
        }
        self.send(head.tree_size, head.root, observed.pending_nonce)
            .await
    }

    /// Records the transaction, sends it, records its hash, waits for its
    /// receipt and records the checkpoint.
    async fn send(&mut self, tree_size: u64, root: Hash32, nonce: u64) -> Result<(), StepError> {
        let mut row = InflightRow {
            tree_size,
            root,
            chain_id: self.chain.chain_id(),
            contract: self.chain.contract(),
            tx_hash: None,
            nonce,
            sent_at: Utc::now(),
        };
        if let Some(existing) = self.session.inflight()? {
            if existing.tree_size == tree_size && existing.root == root && existing.nonce == nonce {
                row.tx_hash = existing.tx_hash;
            }
        }
        self.session.put_inflight(&row)?;
        let tx = match self.chain.send_checkpoint(tree_size, root, nonce).await {
            Ok(tx) => tx,
            Err(ChainFault::AlreadyAnchored(why)) => {
                tracing::info!(tree_size, reason = %why, "the checkpoint is already anchored");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        row.tx_hash = Some(tx);
        self.session.put_inflight(&row)?;
        tracing::info!(tree_size, nonce, tx = %hex_0x(&tx), "checkpoint sent");
        self.await_and_record(tree_size, root, tx).await?;
        Ok(())
    }

    /// Waits (up to [`RECEIPT_PATIENCE`]) for the final receipt of `tx` and
    /// records the checkpoint; `false` when it did not come in time.
    async fn await_and_record(
        &mut self,
        tree_size: u64,
        root: Hash32,
        tx: Hash32,
    ) -> Result<bool, StepError> {
        let deadline = Instant::now() + RECEIPT_PATIENCE;
        loop {
            if self.stopped() {
                return Ok(false);
            }
            if let Some(receipt) = self.chain.receipt(tx).await? {
                if !receipt.success {
                    tracing::error!(tree_size, tx = %hex_0x(&tx), "the checkpoint transaction failed on chain");
                    self.session.clear_inflight()?;
                    return Err(ChainFault::Refused(format!(
                        "checkpoint transaction {} failed",
                        hex_0x(&tx)
                    ))
                    .into());
                }
                let row = CheckpointRow {
                    tree_size,
                    root,
                    chain_id: self.chain.chain_id(),
                    contract: self.chain.contract(),
                    tx_hash: tx,
                    block_number: receipt.block_number,
                    block_hash: receipt.block_hash,
                    anchored_at: Utc::now(),
                };
                self.session.record_checkpoint(&row)?;
                self.last_anchor = Instant::now();
                tracing::info!(tree_size, tx = %hex_0x(&tx), block = receipt.block_number, "checkpoint anchored");
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            // Keep the heartbeat while waiting (other replicas read it).
            self.publish(WorkerState::Anchoring, None);
            self.pause(RECEIPT_POLL).await;
        }
    }
}

/// This process's anchoring configuration, for `$ledger-status` when no
/// worker has published a fresh state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalAnchoring {
    pub chain_id: u64,
    pub contract: Address20,
}

/// What `$ledger-status` (and `fhirledger chain status`) answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerStatus {
    pub tree_size: u64,
    pub anchored_size: u64,
    pub lag_leaves: u64,
    pub lag_seconds: u64,
    pub chain_id: Option<u64>,
    pub anchored_root: Option<Hash32>,
    pub contract: Option<Address20>,
    pub last_tx: Option<Hash32>,
    pub worker: WorkerState,
    /// The worker's last error, when it reported one.
    pub last_error: Option<String>,
}

impl LedgerStatus {
    /// The status from a store snapshot.
    ///
    /// `worker` is the state the active worker (on whichever process holds
    /// the anchoring lock) published within [`STATUS_FRESHNESS`]. Without
    /// one: `standby` when this process is configured to anchor (no worker
    /// anchors right now; this one waits for the lock), else
    /// `waiting-for-chain` with `chainId` absent (anchoring is not
    /// configured on this process, and no other process anchors).
    pub fn from_snapshot(s: &LedgerSnapshot, local: Option<LocalAnchoring>) -> LedgerStatus {
        let anchored_size = s.last_checkpoint.map(|c| c.tree_size).unwrap_or(0);
        let lag_leaves = s.head.tree_size.saturating_sub(anchored_size);
        let lag_seconds = if lag_leaves == 0 {
            0
        } else {
            let since: DateTime<Utc> = s.oldest_unanchored_at.unwrap_or(s.head.updated_at);
            (s.now - since).num_seconds().max(0) as u64
        };
        let fresh = s
            .status
            .as_ref()
            .filter(|st| s.now - st.updated_at <= STATUS_FRESHNESS);
        let (worker, last_error, chain_id, contract) = match fresh {
            Some(st) => (
                WorkerState::from_code(&st.state).unwrap_or(WorkerState::WaitingForChain),
                st.last_error.clone(),
                st.chain_id,
                st.contract,
            ),
            None => match local {
                Some(l) => (
                    WorkerState::Standby,
                    None,
                    Some(l.chain_id),
                    Some(l.contract),
                ),
                None => (WorkerState::WaitingForChain, None, None, None),
            },
        };
        LedgerStatus {
            tree_size: s.head.tree_size,
            anchored_size,
            lag_leaves,
            lag_seconds,
            chain_id: chain_id
                .or(s.last_checkpoint.map(|c| c.chain_id))
                .filter(|_| fresh.is_some() || local.is_some()),
            anchored_root: s.last_checkpoint.map(|c| c.root),
            contract: contract.or(s.last_checkpoint.map(|c| c.contract)),
            last_tx: s.last_checkpoint.map(|c| c.tx_hash),
            worker,
            last_error,
        }
    }

    /// As a FHIR Parameters resource.
    pub fn to_parameters(&self) -> Value {
        let mut parameter = vec![
            json!({ "name": "treeSize", "valueDecimal": self.tree_size }),
            json!({ "name": "anchoredSize", "valueDecimal": self.anchored_size }),
            json!({ "name": "lagLeaves", "valueDecimal": self.lag_leaves }),
            json!({ "name": "lagSeconds", "valueDecimal": self.lag_seconds }),
        ];
        if let Some(id) = self.chain_id {
            parameter.push(json!({ "name": "chainId", "valueDecimal": id }));
        }
        if let Some(root) = &self.anchored_root {
            parameter.push(json!({ "name": "anchoredRoot", "valueString": hex_0x(root) }));
        }
        if let Some(contract) = &self.contract {
            parameter.push(json!({ "name": "contract", "valueString": hex_0x(contract) }));
        }
        if let Some(tx) = &self.last_tx {
            parameter.push(json!({ "name": "lastTxHash", "valueString": hex_0x(tx) }));
        }
        parameter.push(json!({ "name": "worker", "valueCode": self.worker.code() }));
        if let Some(error) = &self.last_error {
            parameter.push(json!({ "name": "lastError", "valueString": error }));
        }
        json!({ "resourceType": "Parameters", "parameter": parameter })
    }
}

/// `GET /fhir/$ledger-status`: compliance officers and `system/` clients.
///
/// Who may ask is the AuditEvent search decision (`Guard::permit`, the
/// decision every AuditEvent search takes): refused there, refused here.
/// Because the status describes the whole trail rather than one patient's
/// part of it, a patient (whose AuditEvent access is their own compartment)
/// is refused too, as `$access` does by role. The call is recorded as an
/// operation in the caller's audit trail.
pub fn ledger_status(
    store: &PgStore,
    guard: &Guard,
    local: Option<LocalAnchoring>,
) -> Result<LedgerStatus, ServiceError> {
    guard.permit("AuditEvent", Interaction::Search)?;
    if guard.caller().and_then(|c| c.role) == Some(Role::Patient) {
        return Err(ServiceError::forbidden(
            "$ledger-status describes the whole audit trail: compliance officers and system/ clients only",
        ));
    }
    let snapshot = store.ledger_snapshot()?;
    if let Some(recorder) = guard.recorder() {
        recorder.add(recorder.operation(guard.caller(), "$ledger-status", None, Vec::new(), None));
    }
    Ok(LedgerStatus::from_snapshot(&snapshot, local))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(n: u8) -> Hash32 {
        [n; 32]
    }

    fn observed() -> Observed {
        Observed {
            head_size: 10,
            recorded: Some((5, root(5))),
            has_code: true,
            chain_latest: (5, root(5)),
            chain_root_at_recorded: Some(root(5)),
            our_root_at_chain_size: None,
            inflight: None,
            confirmed_nonce: 3,
            pending_nonce: 3,
        }
    }

    #[test]
    fn anchors_when_the_head_is_ahead_and_idles_when_caught_up() {
        assert_eq!(decide(&observed()), Decision::Anchor);
        let o = Observed {
            head_size: 5,
            ..observed()
        };
        assert_eq!(decide(&o), Decision::Idle);
        let fresh = Observed {
            head_size: 0,
            recorded: None,
            chain_latest: (0, [0; 32]),
            chain_root_at_recorded: None,
            ..observed()
        };
        assert_eq!(decide(&fresh), Decision::Idle);
        let first = Observed {
            head_size: 1,
            ..fresh
        };
        assert_eq!(decide(&first), Decision::Anchor);
    }

    #[test]
    fn no_code_is_a_mismatch() {
        let o = Observed {
            has_code: false,
            ..observed()
        };
        assert!(matches!(decide(&o), Decision::Mismatch(_)));
    }

    #[test]
    fn a_chain_behind_our_record_is_a_reset_chain() {
        let o = Observed {
            chain_latest: (0, [0; 32]),
            chain_root_at_recorded: Some([0; 32]),
            ..observed()
        };
        assert!(matches!(decide(&o), Decision::Mismatch(why) if why.contains("below")));
    }

    #[test]
    fn another_root_at_our_size_is_a_mismatch() {
        let o = Observed {
            chain_root_at_recorded: Some(root(9)),
            ..observed()
        };
        assert!(matches!(decide(&o), Decision::Mismatch(_)));
    }

    #[test]
    fn a_log_shorter_than_its_checkpoints_is_a_mismatch() {
        let o = Observed {
            head_size: 4,
            ..observed()
        };
        assert!(matches!(decide(&o), Decision::Mismatch(_)));
    }

    #[test]
    fn an_unrecorded_checkpoint_of_ours_is_recorded_from_the_chain() {
        let o = Observed {
            chain_latest: (8, root(8)),
            our_root_at_chain_size: Some(root(8)),
            inflight: Some(Inflight {
                tree_size: 8,
                root: root(8),
                tx: None,
                nonce: 3,
            }),
            ..observed()
        };
        assert_eq!(
            decide(&o),
            Decision::RecordFromChain {
                tree_size: 8,
                root: root(8)
            }
        );
        // Not our root at that size, or beyond our log: never ours.
        let other = Observed {
            our_root_at_chain_size: Some(root(7)),
            ..o
        };
        assert!(matches!(decide(&other), Decision::Mismatch(_)));
        let beyond = Observed {
            chain_latest: (11, root(11)),
            our_root_at_chain_size: None,
            ..o
        };
        assert!(matches!(decide(&beyond), Decision::Mismatch(why) if why.contains("beyond")));
    }

    #[test]
    fn a_transaction_in_flight_is_awaited_resent_or_forgotten() {
        let inflight = Inflight {
            tree_size: 9,
            root: root(9),
            tx: Some(root(0xaa)),
            nonce: 3,
        };
        // In the node's pool: wait for it.
        let pooled = Observed {
            inflight: Some(inflight),
            pending_nonce: 4,
            ..observed()
        };
        assert_eq!(decide(&pooled), Decision::AwaitReceipt { tx: root(0xaa) });
        // Crashed before the hash was recorded, or the pool forgot it: send it again.
        let unsent = Observed {
            inflight: Some(Inflight {
                tx: None,
                ..inflight
            }),
            ..pooled
        };
        assert_eq!(
            decide(&unsent),
            Decision::Resend(Inflight {
                tx: None,
                ..inflight
            })
        );
        let forgotten = Observed {
            inflight: Some(inflight),
            pending_nonce: 3,
            ..observed()
        };
        assert_eq!(decide(&forgotten), Decision::Resend(inflight));
        // Its nonce used by something else, the chain without it: forget it.
        let replaced = Observed {
            inflight: Some(inflight),
            confirmed_nonce: 4,
            pending_nonce: 4,
            ..observed()
        };
        assert!(matches!(decide(&replaced), Decision::DropInflight(_)));
        // Already covered by the chain's latest.
        let covered = Observed {
            inflight: Some(Inflight {
                tree_size: 5,
                ..inflight
            }),
            ..observed()
        };
        assert!(matches!(decide(&covered), Decision::DropInflight(_)));
    }

    #[test]
    fn never_anchors_while_mismatched_whatever_is_in_flight() {
        let o = Observed {
            has_code: true,
            chain_latest: (2, root(2)),
            chain_root_at_recorded: Some([0; 32]),
            inflight: Some(Inflight {
                tree_size: 9,
                root: root(9),
                tx: None,
                nonce: 3,
            }),
            ..observed()
        };
        assert!(matches!(decide(&o), Decision::Mismatch(_)));
    }

    fn snapshot() -> LedgerSnapshot {
        let now = Utc::now();
        LedgerSnapshot {
            head: TreeHead {
                tree_size: 12,
                root: root(12),
                updated_at: now,
            },
            last_checkpoint: Some(CheckpointRow {
                tree_size: 10,
                root: root(10),
                chain_id: 48879,
                contract: [7; 20],
                tx_hash: root(0xee),
                block_number: 4,
                block_hash: root(4),
                anchored_at: now,
            }),
            oldest_unanchored_at: Some(now - chrono::Duration::seconds(3)),
            status: Some(fhirledger_postgres::anchors::AnchorStatusRow {
                state: "waiting-for-chain".into(),
                chain_id: Some(48879),
                contract: Some([7; 20]),
                last_error: Some("chain unavailable: refused".into()),
                updated_at: now,
            }),
            now,
        }
    }

    #[test]
    fn status_reports_lag_and_the_published_worker_state() {
        let status = LedgerStatus::from_snapshot(&snapshot(), None);
        assert_eq!(status.lag_leaves, 2);
        assert_eq!(status.lag_seconds, 3);
        assert_eq!(status.worker, WorkerState::WaitingForChain);
        assert_eq!(status.chain_id, Some(48879));
        let p = status.to_parameters();
        let names: Vec<&str> = p["parameter"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["name"].as_str())
            .collect();
        for name in [
            "treeSize",
            "anchoredSize",
            "lagLeaves",
            "lagSeconds",
            "chainId",
            "anchoredRoot",
            "contract",
            "lastTxHash",
            "worker",
        ] {
            assert!(names.contains(&name), "{name} missing from {p}");
        }
    }

    #[test]
    fn without_a_fresh_worker_the_state_says_who_could_anchor() {
        let mut s = snapshot();
        if let Some(st) = s.status.as_mut() {
            st.updated_at = s.now - chrono::Duration::seconds(120);
        }
        let configured = LocalAnchoring {
            chain_id: 1337,
            contract: [1; 20],
        };
        let status = LedgerStatus::from_snapshot(&s, Some(configured));
        assert_eq!(status.worker, WorkerState::Standby);
        assert_eq!(status.chain_id, Some(1337));
        let unconfigured = LedgerStatus::from_snapshot(&s, None);
        assert_eq!(unconfigured.worker, WorkerState::WaitingForChain);
        assert_eq!(unconfigured.chain_id, None);
    }
}
