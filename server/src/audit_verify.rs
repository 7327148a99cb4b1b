//! `fhirledger audit verify`: recomputes every leaf of the Merkle log from
//! the AuditEvent and Consent rows it records, rebuilds the tree, checks
//! every anchored checkpoint's root on chain and the consistency between
//! successive checkpoints, and names the first disagreement.
//!
//! It streams: one read-only snapshot of the database (`PgStore::log_snapshot`),
//! exported to [`READERS`] more connections that read the leaves with their
//! rows, alternate batches in index order, ahead of this thread, which hashes
//! and checks them in order; only the tree's right edge (`Frontier`, O(log n)
//! hashes), the nodes the next consistency proof needs and a few batches are
//! in memory, whatever the log's size. What a
//! disagreement means is decided by the pure [`check`] module.

pub mod check;

use std::collections::{HashSet, VecDeque};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use fhirledger_chain::{Address, AnchorReader};
use fhirledger_merkle::{
    consistency_nodes, Frontier, Hash, Hasher, Keccak256Hasher, LeafData, NodeId, PerfectNode,
    ProofNodes,
};
use fhirledger_postgres::{LeafWithRow, LogSnapshot, PgStore, RecordedCheckpoint, StoreError};
use serde_json::json;

use check::{Finding, LeafChecker};

/// Leaves read per query (and kept ahead for swaps).
const BATCH: usize = 4_000;
/// Checkpoints and unlogged rows read per query.
const PAGE: usize = 1_000;
/// Findings kept for the report (the count goes on).
const KEPT_FINDINGS: usize = 100;

/// `audit verify`'s options.
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The deployment's database (else the `dev` cluster of
    /// FHIRLEDGER_DATA_DIR, as the other admin commands).
    #[arg(long, env = "FHIRLEDGER_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The chain node's JSON-RPC endpoint (plain http://).
    #[arg(long, env = "FHIRLEDGER_CHAIN_RPC_URL")]
    pub rpc_url: String,
    /// The AuditAnchor contract the checkpoints must be on (the one the
    /// deployment published, not one read from the database).
    #[arg(long, env = "FHIRLEDGER_ANCHOR_CONTRACT")]
    pub contract: Address,
    /// The chain id the node must report.
    #[arg(long, env = "FHIRLEDGER_CHAIN_ID")]
    pub chain_id: Option<u64>,
    /// Start at this tree size (leaves before it are not read; the tree's
    /// right edge at that size is taken from the stored nodes, which the
    /// next checkpoint's root on chain then vouches for).
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Stop at this tree size (default: the whole log).
    #[arg(long)]
    pub to: Option<u64>,
    /// Print the summary as one JSON object instead of lines of text.
    #[arg(long)]
    pub json: bool,
    /// Longest wait for one answer of the chain node, in seconds.
    #[arg(long, default_value_t = 10)]
    pub rpc_timeout: u64,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub tree_size: u64,
    pub leaves_checked: u64,
    pub checkpoints_checked: u64,
    pub first_anchored: Option<u64>,
    pub last_anchored: Option<u64>,
    pub chain_latest: u64,
    pub unsequenced: u64,
    pub findings_total: u64,
    pub first: Option<Finding>,
    pub findings: Vec<Finding>,
    pub elapsed: Duration,
    /// Time spent waiting for the reading thread's next batch.
    pub reading: Duration,
    /// Time the reading thread spent in the leaves' queries (database and
    /// decoding, the rows' SHA-256 included).
    pub reader_busy: Duration,
}

impl Outcome {
    fn report(&mut self, finding: Finding) {
        tracing::debug!(finding = %finding.line(), "disagreement");
        self.findings_total += 1;
        if self
            .first
            .as_ref()
            .is_none_or(|first| finding.order_key() < first.order_key())
        {
            self.first = Some(finding.clone());
        }
        if self.findings.len() < KEPT_FINDINGS {
            self.findings.push(finding);
        }
    }

    pub fn holds(&self) -> bool {
        self.findings_total == 0
    }
}

/// Runs the verification and prints its summary; exit code 0 when
/// everything holds, 1 on any disagreement.
pub fn run(store: &PgStore, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the chain client's runtime")?;
    let chain = runtime
        .block_on(AnchorReader::connect(
            &args.rpc_url,
            args.chain_id,
            args.contract,
            Duration::from_secs(args.rpc_timeout.max(1)),
        ))
        .context("connecting to the chain node")?;
    // Before the snapshot: whatever the contract holds now was sequenced
    // (and committed) before it was anchored, so the snapshot has it.
    let (chain_latest, _) = runtime
        .block_on(chain.latest())
        .context("reading the contract's latest checkpoint")?;
    let started = Instant::now();
    let mut outcome = store.log_snapshot(|snap| {
        verify(
            store,
            snap,
            &Chain {
                runtime: &runtime,
                reader: &chain,
            },
            args,
            chain_latest,
        )
    })?;
    outcome.elapsed = started.elapsed();
    print_summary(&outcome, args, &chain);
    Ok(if outcome.holds() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

struct Chain<'a> {
    runtime: &'a tokio::runtime::Runtime,
    reader: &'a AnchorReader,
}

impl Chain<'_> {
    fn root_at(&self, size: u64) -> anyhow::Result<Hash> {
        self.runtime
            .block_on(self.reader.root_at(size))
            .with_context(|| format!("reading the contract's root for size {size}"))
    }
}

/// One checkpoint to check: a `merkle_checkpoints` row, or the contract's
/// latest when the database has no row for it.
struct Checkpoint {
    tree_size: u64,
    row: Option<RecordedCheckpoint>,
}

/// The checkpoints of sizes in `[from, to]`, by size, a page at a time, with
/// the contract's latest merged in.
struct Checkpoints {
    buffer: VecDeque<Checkpoint>,
    /// The last size read from the table.
    read_up_to: u64,
    exhausted: bool,
    to: u64,
    chain_latest: Option<u64>,
    /// The largest size of any row read (anchored, by the database's word).
    pub largest_row: u64,
}

impl Checkpoints {
    fn new(
        snap: &mut LogSnapshot<'_>,
        from: u64,
        to: u64,
        chain_latest: u64,
    ) -> anyhow::Result<Self> {
        let present = snap.has_checkpoints()?;
        if !present {
            tracing::warn!("the database has no merkle_checkpoints table: only the contract's latest checkpoint is checked");
        }
        Ok(Checkpoints {
            buffer: VecDeque::new(),
            // Sizes below `from` are skipped; a checkpoint at `from` itself is
            // checked against the stored right edge.
            read_up_to: from.saturating_sub(1),
            exhausted: !present,
            to,
            chain_latest: (chain_latest >= from.max(1) && chain_latest <= to)
                .then_some(chain_latest),
            largest_row: 0,
        })
    }

    fn fill(&mut self, snap: &mut LogSnapshot<'_>) -> Result<(), StoreError> {
        while self.buffer.len() < 2 && !self.exhausted {
            let page = snap.checkpoints(self.read_up_to, PAGE)?;
            if page.len() < PAGE {
                self.exhausted = true;
            }
            for row in page {
                self.read_up_to = row.tree_size;
                self.largest_row = self.largest_row.max(row.tree_size);
                if row.tree_size == 0 || row.tree_size > self.to {
                    if row.tree_size > self.to {
                        self.exhausted = true;
                    }
                    continue;
                }
                if self.chain_latest == Some(row.tree_size) {
                    self.chain_latest = None;
                }
                if let Some(latest) = self.chain_latest.filter(|l| *l < row.tree_size) {
                    self.buffer.push_back(Checkpoint {
                        tree_size: latest,
                        row: None,
                    });
                    self.chain_latest = None;
                }
                self.buffer.push_back(Checkpoint {
                    tree_size: row.tree_size,
                    row: Some(row),
                });
            }
        }
        if self.exhausted {
            if let Some(latest) = self.chain_latest.take() {
                self.buffer.push_back(Checkpoint {
                    tree_size: latest,
                    row: None,
                });
            }
        }
        Ok(())
    }

    fn peek(&mut self, snap: &mut LogSnapshot<'_>) -> Result<Option<u64>, StoreError> {
        self.fill(snap)?;
        Ok(self.buffer.front().map(|c| c.tree_size))
    }

    /// The size of the checkpoint after the front one.
    fn peek_second(&mut self, snap: &mut LogSnapshot<'_>) -> Result<Option<u64>, StoreError> {
        self.fill(snap)?;
        Ok(self.buffer.get(1).map(|c| c.tree_size))
    }

    fn pop(&mut self) -> Option<Checkpoint> {
        self.buffer.pop_front()
    }
}

/// The nodes a consistency proof from one checkpoint to the next is made of,
/// gathered as the rebuilt tree reaches them.
struct ProofCapture {
    size1: u64,
    size2: u64,
    chain_root1: Hash,
    nodes: ProofNodes,
    hashes: Vec<Option<Hash>>,
}

impl ProofCapture {
    /// Every node a proof from `size1` needs is either on the right edge of
    /// the tree of `size1` leaves or completed by a leaf in `size1..size2`.
    fn new(
        size1: u64,
        size2: u64,
        chain_root1: Hash,
        edge: &[PerfectNode],
    ) -> anyhow::Result<Self> {
        let nodes = consistency_nodes(size1, size2)?;
        let mut capture = ProofCapture {
            size1,
            size2,
            chain_root1,
            hashes: vec![None; nodes.ids().len()],
            nodes,
        };
        for node in edge {
            capture.offer(node.id, node.hash);
        }
        Ok(capture)
    }

    fn offer(&mut self, id: NodeId, hash: Hash) {
        for (wanted, slot) in self.nodes.ids().iter().zip(self.hashes.iter_mut()) {
            if *wanted == id {
                *slot = Some(hash);
            }
        }
    }

    fn proof(&self) -> anyhow::Result<Vec<Hash>> {
        let hashes: Option<Vec<Hash>> = self.hashes.iter().copied().collect();
        let Some(hashes) = hashes else {
            bail!(
                "the consistency proof from {} to {} lacks a node the rebuilt tree should have given",
                self.size1,
                self.size2
            );
        };
        Ok(self.nodes.assemble(&Keccak256Hasher, &hashes)?)
    }
}

/// A batch of leaves from the reading thread.
type LeafBatch = Result<Vec<LeafWithRow>, StoreError>;

/// Threads reading leaves, each on a connection of its own sharing the
/// snapshot: while one waits for the database, another decodes and hashes
/// its batch.
const READERS: u64 = 2;

/// Database connections `audit verify` uses: its snapshot's and the readers'.
pub const CONNECTIONS: u32 = 1 + READERS as u32;

/// Streams the leaves of batches `reader`, `reader + READERS`, … — batch `k`
/// being the leaf indexes `[from + k·BATCH, from + (k+1)·BATCH)` below `to` —
/// through `sender`, on a connection of its own reading the exported
/// snapshot `snapshot_id`. A batch may be empty (a gap in the log); the
/// reader stops at the first empty batch past the stored head's size, or
/// when the receiver is gone.
fn read_leaves(
    store: &PgStore,
    snapshot_id: &str,
    span: (u64, u64, u64),
    reader: u64,
    sender: std::sync::mpsc::SyncSender<LeafBatch>,
) -> Result<Duration, StoreError> {
    let (from, to, head_size) = span;
    let batch_len = BATCH as u64;
    let mut busy = Duration::ZERO;
    let result = store.log_snapshot_at(snapshot_id, |snap| {
        let mut k = reader;
        while let Some(start) = k.checked_mul(batch_len).and_then(|o| o.checked_add(from)) {
            if start >= to {
                break;
            }
            let end = start.saturating_add(batch_len).min(to);
            let started = Instant::now();
            let limit = usize::try_from(end - start).unwrap_or(BATCH);
            let mut batch = snap.leaves_with_rows(start, limit)?;
            // Past a gap the LIMIT reaches into the next batch's range.
            batch.retain(|l| l.leaf_index < end);
            busy += started.elapsed();
            if batch.is_empty() && start >= head_size {
                break;
            }
            if sender.send(Ok(batch)).is_err() {
                break;
            }
            k += READERS;
        }
        Ok::<(), StoreError>(())
    });
    if let Err(e) = result {
        // The receiver reports it; the caller gets it too, should it not.
        let text = e.to_string();
        let _ = sender.send(Err(e));
        return Err(StoreError::Internal(text));
    }
    Ok(busy)
}

fn verify(
    store: &PgStore,
    snap: &mut LogSnapshot<'_>,
    chain: &Chain<'_>,
    args: &VerifyArgs,
    chain_latest: u64,
) -> anyhow::Result<Outcome> {
    let hasher = Keccak256Hasher;
    let head = snap.head()?;
    let from = args.from;
    let to = args.to.unwrap_or(u64::MAX);
    if from > head.tree_size {
        bail!(
            "--from {from} is beyond the log's {} leaves",
            head.tree_size
        );
    }
    if to < from {
        bail!("--to {to} is below --from {from}");
    }
    let mut outcome = Outcome {
        chain_latest,
        ..Outcome::default()
    };
    let mut frontier = if from == 0 {
        Frontier::new(hasher)
    } else {
        Frontier::restore(hasher, from, snap.frontier(from)?)
            .context("restoring the tree's right edge at --from")?
    };
    let expected = head.tree_size.min(to).saturating_sub(from);
    let bar = indicatif::ProgressBar::new(expected);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {human_pos}/{human_len} leaves, {per_sec}, {eta} left",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );

    let mut checkpoints = Checkpoints::new(snap, from, to, chain_latest)?;
    let mut checker = LeafChecker::new(from);
    let mut capture: Option<ProofCapture> = None;
    let mut range_start = from;

    // A checkpoint at `from` itself (the stored edge's root).
    check_due(
        snap,
        chain,
        args,
        &frontier,
        &mut checkpoints,
        &mut capture,
        &mut range_start,
        &mut outcome,
    )?;

    // The leaves stream in on a second connection reading the same
    // snapshot, a batch ahead, while this thread hashes and checks.
    let snapshot_id = snap.export()?;
    let span = (from, to, head.tree_size);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let mut receivers = Vec::new();
        let mut readers = Vec::new();
        for reader in 0..READERS {
            let (sender, receiver) = std::sync::mpsc::sync_channel::<LeafBatch>(1);
            receivers.push(receiver);
            let snapshot_id = &snapshot_id;
            readers
                .push(scope.spawn(move || read_leaves(store, snapshot_id, span, reader, sender)));
        }
        // Batch `k` comes from reader `k % READERS`; None once the log ends.
        let mut k = 0usize;
        let mut next_batch = |outcome: &mut Outcome| -> anyhow::Result<Option<Vec<LeafWithRow>>> {
            let waiting = Instant::now();
            let batch = match receivers.get(k % receivers.len()).map(|r| r.recv()) {
                Some(Ok(batch)) => Some(batch?),
                // The reader is done (or failed: its result says).
                _ => None,
            };
            k += 1;
            outcome.reading += waiting.elapsed();
            Ok(batch)
        };
        let mut current = next_batch(&mut outcome)?;
        while let Some(batch) = current {
            let lookahead = next_batch(&mut outcome)?;
            let mut found = Vec::new();
            checker.check_batch(&batch, lookahead.as_deref().unwrap_or(&[]), &mut |f| {
                found.push(f)
            });
            for f in found {
                outcome.report(f);
            }
            for leaf in &batch {
                let leaf_hash = hasher.leaf_hash(&leaf.leaf_data);
                frontier
                    .append_with(leaf_hash, |node| {
                        if let Some(c) = capture.as_mut() {
                            c.offer(node.id, node.hash);
                        }
                    })
                    .context("rebuilding the tree")?;
                outcome.leaves_checked += 1;
                check_due(
                    snap,
                    chain,
                    args,
                    &frontier,
                    &mut checkpoints,
                    &mut capture,
                    &mut range_start,
                    &mut outcome,
                )?;
            }
            bar.set_position(outcome.leaves_checked);
            current = lookahead;
        }
        // Readers still ahead (past a moved-back head) stop at their next send.
        drop(receivers);
        for reader in readers {
            match reader.join() {
                Ok(result) => {
                    outcome.reader_busy += result.context("reading the log's leaves")?;
                }
                Err(_) => bail!("a thread reading the log's leaves panicked"),
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    outcome.tree_size = frontier.size();

    // Checkpoints the leaves never reached: the log is shorter than anchored.
    let mut beyond = 0;
    while let Some(c) = checkpoints.pop() {
        beyond = beyond.max(c.tree_size);
        checkpoints.fill(snap)?;
    }
    let anchored_in_range = beyond.max(if args.to.is_none() {
        checkpoints.largest_row
    } else {
        0
    });
    let chain_in_range = if chain_latest <= to { chain_latest } else { 0 };
    if let Some(f) = check::check_truncation(frontier.size(), anchored_in_range, chain_in_range) {
        outcome.report(f);
    }
    if args.to.is_none_or(|t| t >= head.tree_size) {
        if let Some(f) = check::check_head(
            head.tree_size,
            &head.root,
            frontier.size(),
            &frontier.root(),
        ) {
            outcome.report(f);
        }
    }

    unlogged_rows(snap, &mut outcome)?;
    Ok(outcome)
}

/// Checks every checkpoint whose size the rebuilt tree has reached.
#[allow(clippy::too_many_arguments)]
fn check_due(
    snap: &mut LogSnapshot<'_>,
    chain: &Chain<'_>,
    args: &VerifyArgs,
    frontier: &Frontier<Keccak256Hasher>,
    checkpoints: &mut Checkpoints,
    capture: &mut Option<ProofCapture>,
    range_start: &mut u64,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let size = frontier.size();
    while let Some(due) = checkpoints.peek(snap)? {
        if due > size {
            return Ok(());
        }
        let next = checkpoints.peek_second(snap)?;
        let Some(checkpoint) = checkpoints.pop() else {
            return Ok(());
        };
        if due < size {
            // Only a size below `from` could be passed over; never checked.
            continue;
        }
        let rebuilt = frontier.root();
        let on_chain = chain.root_at(size)?;
        let row = checkpoint.row.as_ref();
        let facts = check::CheckpointFacts {
            tree_size: size,
            range_start: *range_start,
            rebuilt,
            stored: row.and_then(|r| r.root.clone()),
            stored_contract: row.and_then(|r| r.contract.clone()),
            contract: args.contract.0,
            on_chain,
        };
        let finding = check::check_checkpoint(&facts);
        let matches = finding.is_none();
        if let Some(f) = finding {
            outcome.report(f);
        }
        if let Some(c) = capture.take() {
            if c.size2 == size {
                let proof = c.proof()?;
                if let Some(f) = check::check_consistency(
                    c.size1,
                    size,
                    &c.chain_root1,
                    &on_chain,
                    &proof,
                    matches,
                ) {
                    outcome.report(f);
                }
            }
        }
        outcome.checkpoints_checked += 1;
        outcome.first_anchored.get_or_insert(size);
        outcome.last_anchored = Some(size);
        *range_start = size;
        if let Some(size2) = next {
            *capture = Some(ProofCapture::new(size, size2, on_chain, &frontier.nodes())?);
        }
    }
    Ok(())
}

/// Rows with no sequenced leaf: pending ones are the unsequenced tail,
/// others were inserted behind the server's back.
fn unlogged_rows(snap: &mut LogSnapshot<'_>, outcome: &mut Outcome) -> anyhow::Result<()> {
    outcome.unsequenced = snap.pending_count()?;
    // Read only when some row lacks a leaf (normally just the pending ones).
    let mut pending: Option<HashSet<(String, String, String)>> = None;
    let load_pending =
        |snap: &mut LogSnapshot<'_>| -> anyhow::Result<HashSet<(String, String, String)>> {
            let mut keys = HashSet::new();
            let mut after = 0;
            loop {
                let page = snap.pending(after, BATCH)?;
                for p in &page {
                    after = p.pending_id;
                    if let Ok(d) = LeafData::decode(&p.leaf_data) {
                        keys.insert((d.resource_type, d.id, d.version_id));
                    }
                }
                if page.len() < BATCH {
                    return Ok(keys);
                }
            }
        };
    for consent in [false, true] {
        let mut after = 0;
        loop {
            let page = if consent {
                snap.unlogged_consent_versions(after, PAGE)?
            } else {
                snap.unlogged_audit_events(after, PAGE)?
            };
            for row in &page {
                after = match row.row {
                    fhirledger_postgres::RowRef::AuditEvent { seq }
                    | fhirledger_postgres::RowRef::ResourceVersion { seq } => seq,
                };
                if pending.is_none() {
                    pending = Some(load_pending(snap)?);
                }
                let key = (
                    row.resource_type.clone(),
                    row.resource_id.clone(),
                    row.version_id.clone(),
                );
                if pending.as_ref().is_some_and(|p| p.contains(&key)) {
                    continue;
                }
                outcome.report(check::inserted_row(
                    format!("{}/{}", row.resource_type, row.resource_id),
                    row.version_id.clone(),
                    &row.row,
                ));
            }
            if page.len() < PAGE {
                break;
            }
        }
    }
    Ok(())
}

fn print_summary(outcome: &Outcome, args: &VerifyArgs, chain: &AnchorReader) {
    let seconds = outcome.elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        outcome.leaves_checked as f64 / seconds
    } else {
        0.0
    };
    let unanchored = outcome
        .tree_size
        .saturating_sub(outcome.last_anchored.unwrap_or(0).max(args.from));
    if args.json {
        let mut findings = outcome.findings.clone();
        findings.sort_by_key(Finding::order_key);
        let summary = json!({
            "holds": outcome.holds(),
            "tree_size": outcome.tree_size,
            "from": args.from,
            "to": args.to,
            "leaves_checked": outcome.leaves_checked,
            "checkpoints_checked": outcome.checkpoints_checked,
            "first_anchored_size": outcome.first_anchored,
            "last_anchored_size": outcome.last_anchored,
            "chain_latest_size": outcome.chain_latest,
            "unanchored_tail": unanchored,
            "unsequenced": outcome.unsequenced,
            "chain_id": chain.chain_id(),
            "contract": chain.contract().to_string(),
            "findings_total": outcome.findings_total,
            "first": outcome.first,
            "findings": findings,
            "elapsed_seconds": seconds,
            "waiting_for_leaves_seconds": outcome.reading.as_secs_f64(),
            "reading_leaves_seconds": outcome.reader_busy.as_secs_f64(),
            "leaves_per_second": rate.round(),
        });
        println!("{summary}");
        return;
    }
    match &outcome.first {
        None => println!("the audit trail holds"),
        Some(first) => {
            println!(
                "TAMPERED: {} disagreement{} found; the first:",
                outcome.findings_total,
                if outcome.findings_total == 1 { "" } else { "s" }
            );
            println!("  {}", first.line());
            let mut rest: Vec<&Finding> = outcome.findings.iter().filter(|f| *f != first).collect();
            rest.sort_by_key(|f| f.order_key());
            for f in rest.iter().take(9) {
                println!("  then {}", f.line());
            }
        }
    }
    let anchored = match (outcome.first_anchored, outcome.last_anchored) {
        (Some(first), Some(last)) => format!("sizes {first} to {last}"),
        _ => "none".into(),
    };
    println!(
        "leaves checked: {} (sizes {} to {}), {:.0} leaves/s",
        outcome.leaves_checked, args.from, outcome.tree_size, rate
    );
    println!(
        "checkpoints checked: {} (anchored {anchored}; the contract's latest is {}) on chain {} contract {}",
        outcome.checkpoints_checked,
        outcome.chain_latest,
        chain.chain_id(),
        chain.contract()
    );
    println!(
        "unanchored tail: {unanchored} leaves; not yet sequenced: {}",
        outcome.unsequenced
    );
}
