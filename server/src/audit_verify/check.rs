//! What a disagreement between the stored rows, the Merkle log and the chain
//! means (pure: no I/O, no clock). `audit_verify` streams the facts in; this
//! module names the tampering.

use std::collections::{HashMap, HashSet};

use fhirledger_merkle::{verify_consistency, Hash, Keccak256Hasher, LeafData, LeafKind};
use fhirledger_postgres::{LeafWithRow, RowFacts, RowRef};
use serde::Serialize;

/// The kinds of tampering (and of damage) the verifier tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A leaf index is missing from the log (a leaf row deleted).
    MissingLeaf,
    /// A leaf's data cannot be decoded or disagrees with its own columns.
    MalformedLeaf,
    /// The row a leaf names has another content hash or recorded time than
    /// the leaf commits to.
    ModifiedRow,
    /// Two rows hold each other's content (each matches the other's leaf).
    SwappedRows,
    /// The row a leaf names is absent.
    DeletedRow,
    /// The log has fewer leaves than a checkpoint anchored.
    Truncated,
    /// A stored checkpoint's root (or the tree head's) differs from the tree
    /// rebuilt from the leaves.
    RootMismatch,
    /// A checkpoint's root is not the one the contract holds for its size.
    NotOnChain,
    /// Two successive on-chain checkpoints are not consistent with one
    /// append-only log.
    Inconsistent,
    /// A checkpoint's root is on the given contract, but its row names
    /// another contract (the row was altered).
    WrongContract,
    /// A row (AuditEvent, Consent version) that has no leaf, sequenced or
    /// pending.
    InsertedRow,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::MissingLeaf => "missing leaf",
            Kind::MalformedLeaf => "malformed leaf",
            Kind::ModifiedRow => "modified row",
            Kind::SwappedRows => "swapped rows",
            Kind::DeletedRow => "deleted row",
            Kind::Truncated => "truncated log",
            Kind::RootMismatch => "root mismatch",
            Kind::NotOnChain => "checkpoint not on chain",
            Kind::Inconsistent => "inconsistent checkpoints",
            Kind::WrongContract => "checkpoint row names another contract",
            Kind::InsertedRow => "inserted row",
        }
    }
}

/// A database row, as a finding names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowName {
    pub table: &'static str,
    pub seq: i64,
}

impl RowName {
    pub fn of(row: &RowRef) -> RowName {
        match row {
            RowRef::AuditEvent { seq } => RowName {
                table: "audit_events",
                seq: *seq,
            },
            RowRef::ResourceVersion { seq } => RowName {
                table: "resource_versions",
                seq: *seq,
            },
        }
    }
}

/// One disagreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: Kind,
    /// The first leaf concerned: the leaf itself, or the first leaf of the
    /// range a checkpoint finding covers. None for a row without a leaf.
    pub leaf_index: Option<u64>,
    /// For range findings, the end of the range (exclusive): the
    /// checkpoint's size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaf_end: Option<u64>,
    /// The other leaf of a swap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_leaf_index: Option<u64>,
    /// `Type/id` of what the leaf or row records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The database row concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row: Option<RowName>,
    /// The checkpoint concerned (its tree size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<u64>,
    /// Words for a person.
    pub detail: String,
}

impl Finding {
    fn new(kind: Kind, leaf_index: Option<u64>, detail: String) -> Finding {
        Finding {
            kind,
            leaf_index,
            leaf_end: None,
            other_leaf_index: None,
            resource: None,
            version: None,
            row: None,
            checkpoint: None,
            detail,
        }
    }

    fn about(mut self, leaf: &LeafWithRow) -> Finding {
        self.resource = Some(format!("{}/{}", leaf.resource_type, leaf.resource_id));
        self.version = Some(leaf.version_id.clone());
        self.row = leaf.row.as_ref().map(|r| RowName::of(&r.row));
        self
    }

    /// The order findings are reported in: by leaf (rows without a leaf
    /// last), then by kind.
    pub fn order_key(&self) -> (u64, Kind) {
        (self.leaf_index.unwrap_or(u64::MAX), self.kind)
    }

    /// One line for a person.
    pub fn line(&self) -> String {
        let mut text = match (self.leaf_index, self.leaf_end) {
            (Some(i), Some(end)) if end > i + 1 => format!("leaves {i}..{end}: "),
            (Some(i), _) => format!("leaf {i}: "),
            (None, _) => String::new(),
        };
        text.push_str(self.kind.describe());
        if let Some(resource) = &self.resource {
            text.push_str(&format!(": {resource}"));
            if let Some(version) = &self.version {
                text.push_str(&format!(" version {version}"));
            }
        }
        if let Some(row) = &self.row {
            text.push_str(&format!(" ({} seq {})", row.table, row.seq));
        }
        if let Some(size) = self.checkpoint {
            text.push_str(&format!(" [checkpoint {size}]"));
        }
        text.push_str(": ");
        text.push_str(&self.detail);
        text
    }
}

fn micros_text(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| format!("{micros} µs"))
}

/// Checks leaves against their rows, a batch at a
/// time, in index order. Holds only what a swap across the batch boundary
/// needs (the partners already explained), so memory stays bounded.
pub struct LeafChecker {
    /// The next leaf index expected.
    next_index: u64,
    /// Leaves ahead already reported as the second half of a swap.
    explained: HashSet<u64>,
}

/// A leaf's decoded content hash and recorded time, for matching swaps.
struct Committed {
    content_sha256: [u8; 32],
}

impl LeafChecker {
    pub fn new(first_index: u64) -> LeafChecker {
        LeafChecker {
            next_index: first_index,
            explained: HashSet::new(),
        }
    }

    /// Checks `batch` (leaves in index order), looking for swap partners in
    /// the rest of the batch and in `lookahead` (the leaves that follow it),
    /// and reports each disagreement.
    pub fn check_batch(
        &mut self,
        batch: &[LeafWithRow],
        lookahead: &[LeafWithRow],
        report: &mut impl FnMut(Finding),
    ) {
        // The leaves ahead by the content hash they commit to, built on the
        // first mismatch of the batch only.
        let mut ahead: Option<HashMap<[u8; 32], u64>> = None;
        let mut ahead_rows: HashMap<u64, &LeafWithRow> = HashMap::new();
        for (position, leaf) in batch.iter().enumerate() {
            if leaf.leaf_index > self.next_index {
                let mut f = Finding::new(
                    Kind::MissingLeaf,
                    Some(self.next_index),
                    format!(
                        "the log has no leaf {}{}: the next stored leaf is {}",
                        self.next_index,
                        if leaf.leaf_index > self.next_index + 1 {
                            format!("..{}", leaf.leaf_index - 1)
                        } else {
                            String::new()
                        },
                        leaf.leaf_index
                    ),
                );
                f.leaf_end = Some(leaf.leaf_index);
                report(f);
            }
            self.next_index = leaf.leaf_index.saturating_add(1);
            let Some(data) = self.check_leaf_itself(leaf, report) else {
                continue;
            };
            let Some(row) = &leaf.row else {
                report(
                    Finding::new(
                        Kind::DeletedRow,
                        Some(leaf.leaf_index),
                        format!(
                            "the leaf names {} {} version {}, which is not in the database",
                            table_of(&leaf.resource_type),
                            leaf.resource_id,
                            leaf.version_id
                        ),
                    )
                    .about(leaf),
                );
                continue;
            };
            if row.content_sha256 == data.content_sha256
                && row.recorded_micros == data.recorded_micros
            {
                continue;
            }
            if self.explained.remove(&leaf.leaf_index) {
                continue;
            }
            let ahead = ahead.get_or_insert_with(|| {
                let mut map = HashMap::new();
                for other in batch[position + 1..].iter().chain(lookahead) {
                    if let Some(c) = committed(other) {
                        map.entry(c.content_sha256).or_insert(other.leaf_index);
                        ahead_rows.insert(other.leaf_index, other);
                    }
                }
                map
            });
            let partner = ahead
                .get(&row.content_sha256)
                .filter(|j| **j > leaf.leaf_index)
                .and_then(|j| ahead_rows.get(j))
                .filter(|other| {
                    other
                        .row
                        .as_ref()
                        .is_some_and(|r| r.content_sha256 == data.content_sha256)
                });
            if let Some(other) = partner {
                self.explained.insert(other.leaf_index);
                let mut f = Finding::new(
                    Kind::SwappedRows,
                    Some(leaf.leaf_index),
                    format!(
                        "the row of leaf {} holds what leaf {} commits to ({}/{} version {}{}), and the other way round",
                        leaf.leaf_index,
                        other.leaf_index,
                        other.resource_type,
                        other.resource_id,
                        other.version_id,
                        other
                            .row
                            .as_ref()
                            .map(|r| {
                                let name = RowName::of(&r.row);
                                format!(", {} seq {}", name.table, name.seq)
                            })
                            .unwrap_or_default()
                    ),
                )
                .about(leaf);
                f.other_leaf_index = Some(other.leaf_index);
                report(f);
                continue;
            }
            report(modified(leaf, &data, row));
        }
    }

    /// Decodes the leaf and checks it against its own columns; `None` when it is unusable (reported).
    fn check_leaf_itself(
        &self,
        leaf: &LeafWithRow,
        report: &mut impl FnMut(Finding),
    ) -> Option<LeafData> {
        let data = match LeafData::decode(&leaf.leaf_data) {
            Ok(data) => data,
            Err(e) => {
                report(
                    Finding::new(
                        Kind::MalformedLeaf,
                        Some(leaf.leaf_index),
                        format!("the leaf's data does not decode: {e}"),
                    )
                    .about(leaf),
                );
                return None;
            }
        };
        let kind_type = match data.kind {
            LeafKind::ConsentVersion => "Consent",
            LeafKind::AuditEvent => "AuditEvent",
        };
        if data.resource_type != leaf.resource_type
            || data.id != leaf.resource_id
            || data.version_id != leaf.version_id
            || data.resource_type != kind_type
        {
            report(
                Finding::new(
                    Kind::MalformedLeaf,
                    Some(leaf.leaf_index),
                    format!(
                        "the leaf's data records {:?} {}/{} version {}, its columns say {}/{} version {}",
                        data.kind,
                        data.resource_type,
                        data.id,
                        data.version_id,
                        leaf.resource_type,
                        leaf.resource_id,
                        leaf.version_id
                    ),
                )
                .about(leaf),
            );
            return None;
        }
        Some(data)
    }
}

fn table_of(resource_type: &str) -> &'static str {
    if resource_type == "AuditEvent" {
        "the AuditEvent"
    } else {
        "the resource version"
    }
}

fn committed(leaf: &LeafWithRow) -> Option<Committed> {
    LeafData::decode(&leaf.leaf_data).ok().map(|d| Committed {
        content_sha256: d.content_sha256,
    })
}

fn modified(leaf: &LeafWithRow, data: &LeafData, row: &RowFacts) -> Finding {
    let mut what = Vec::new();
    if row.content_sha256 != data.content_sha256 {
        what.push(format!(
            "its content's SHA-256 is {}, the leaf commits to {}",
            hex::encode(row.content_sha256),
            hex::encode(data.content_sha256)
        ));
    }
    if row.recorded_micros != data.recorded_micros {
        what.push(format!(
            "its recorded time is {}, the leaf commits to {}",
            micros_text(row.recorded_micros),
            micros_text(data.recorded_micros)
        ));
    }
    Finding::new(
        Kind::ModifiedRow,
        Some(leaf.leaf_index),
        format!("the row was changed: {}", what.join("; ")),
    )
    .about(leaf)
}

/// A checkpoint as the verifier sees it when the rebuilt tree reaches its
/// size.
#[derive(Debug, Clone)]
pub struct CheckpointFacts {
    pub tree_size: u64,
    /// Where the range it covers starts: the previous checkpoint checked
    /// (or where verification started).
    pub range_start: u64,
    /// The root of the tree rebuilt from the stored leaves.
    pub rebuilt: Hash,
    /// The root its `merkle_checkpoints` row stores (None: no row; the chain's
    /// latest checkpoint is checked with or without one). A root of another
    /// length than 32 bytes is kept as is.
    pub stored: Option<Vec<u8>>,
    /// The contract its row names, if any.
    pub stored_contract: Option<Vec<u8>>,
    /// The contract the auditor trusts (`--contract`).
    pub contract: [u8; 20],
    /// `rootAt(tree_size)` on that contract (zero: none).
    pub on_chain: Hash,
}

/// The finding a checkpoint makes, if any.
pub fn check_checkpoint(c: &CheckpointFacts) -> Option<Finding> {
    let absent = c.on_chain == [0u8; 32];
    let other_contract = c
        .stored_contract
        .as_deref()
        .filter(|stored| *stored != c.contract.as_slice())
        .map(|stored| {
            format!(
                "; its row says it was anchored under contract 0x{}, not 0x{} (re-anchored under another contract?)",
                hex::encode(stored),
                hex::encode(c.contract)
            )
        })
        .unwrap_or_default();
    let chain_text = if absent {
        "the contract holds no root for this size".to_string()
    } else {
        format!("the contract holds {}", hex::encode(c.on_chain))
    };
    let range = |kind, detail: String| {
        let mut f = Finding::new(kind, Some(c.range_start), detail);
        f.leaf_end = Some(c.tree_size);
        f.checkpoint = Some(c.tree_size);
        f
    };
    match &c.stored {
        Some(stored) if stored.as_slice() != c.rebuilt.as_slice() => {
            let verdict = if stored.as_slice() == c.on_chain.as_slice() {
                "the log's leaves in this range were rewritten after it was anchored (the checkpoint row and the chain agree, the rebuilt tree does not)"
            } else if c.rebuilt == c.on_chain {
                "the checkpoint row was altered (the log agrees with the chain)"
            } else {
                "neither the checkpoint row nor the rebuilt tree agrees with the chain"
            };
            Some(range(
                Kind::RootMismatch,
                format!(
                    "the checkpoint row stores root 0x{}, the tree rebuilt from the leaves has {}; {chain_text}: {verdict}{other_contract}",
                    hex::encode(stored),
                    hex::encode(c.rebuilt)
                ),
            ))
        }
        _ if c.rebuilt != c.on_chain => Some(range(
            Kind::NotOnChain,
            format!(
                "the rebuilt root {}{} is not on chain: {chain_text}{other_contract}",
                hex::encode(c.rebuilt),
                if c.stored.is_some() {
                    " (as the checkpoint row stores it)"
                } else {
                    ""
                }
            ),
        )),
        _ if !other_contract.is_empty() => {
            // The checkpoint itself holds; only its row's contract column
            // was changed. Placed at the checkpoint, after any finding in
            // the range it covers.
            let mut f = Finding::new(
                Kind::WrongContract,
                Some(c.tree_size),
                format!(
                    "the root is on the given contract, but{}",
                    other_contract.trim_start_matches(';')
                ),
            );
            f.checkpoint = Some(c.tree_size);
            Some(f)
        }
        _ => None,
    }
}

/// The finding when the consistency proof from checkpoint `size1` to
/// `size2`, made from the rebuilt tree, does not verify against the roots
/// the contract holds. Only reported when the later checkpoint matches the
/// rebuilt tree: otherwise [`check_checkpoint`] has already said what is
/// wrong, and a failed proof adds nothing.
pub fn check_consistency(
    size1: u64,
    size2: u64,
    chain_root1: &Hash,
    chain_root2: &Hash,
    proof: &[Hash],
    later_matches: bool,
) -> Option<Finding> {
    if !later_matches || *chain_root1 == [0u8; 32] || *chain_root2 == [0u8; 32] {
        return None;
    }
    match verify_consistency(
        &Keccak256Hasher,
        size1,
        size2,
        chain_root1,
        chain_root2,
        proof,
    ) {
        Ok(()) => None,
        Err(e) => {
            let mut f = Finding::new(
                Kind::Inconsistent,
                Some(size1),
                format!(
                    "the contract's roots for sizes {size1} and {size2} are not of one append-only log: {e}"
                ),
            );
            f.leaf_end = Some(size2);
            f.checkpoint = Some(size1);
            Some(f)
        }
    }
}

/// The finding when the log is shorter than what was anchored.
pub fn check_truncation(tree_size: u64, anchored: u64, chain_latest: u64) -> Option<Finding> {
    let longest = anchored.max(chain_latest);
    if tree_size >= longest {
        return None;
    }
    let mut f = Finding::new(
        Kind::Truncated,
        Some(tree_size),
        format!(
            "the log has {tree_size} leaves, but checkpoints up to size {longest} were anchored ({}): leaves {tree_size}..{longest} are gone",
            if chain_latest >= anchored {
                format!("the contract's latest is {chain_latest}")
            } else {
                format!("the checkpoint rows go up to {anchored}")
            }
        ),
    );
    f.leaf_end = Some(longest);
    Some(f)
}

/// A row with no leaf, neither sequenced nor pending.
pub fn inserted_row(resource: String, version: String, row: &RowRef) -> Finding {
    let mut f = Finding::new(
        Kind::InsertedRow,
        None,
        "the row has no leaf in the log, sequenced or pending: it was not written through the server".into(),
    );
    f.resource = Some(resource);
    f.version = Some(version);
    f.row = Some(RowName::of(row));
    f
}

/// The finding when the stored tree head disagrees with the rebuilt tree.
pub fn check_head(
    stored_size: u64,
    stored_root: &Hash,
    rebuilt_size: u64,
    rebuilt: &Hash,
) -> Option<Finding> {
    if stored_size != rebuilt_size {
        let mut f = Finding::new(
            if stored_size > rebuilt_size {
                Kind::Truncated
            } else {
                Kind::RootMismatch
            },
            Some(stored_size.min(rebuilt_size)),
            format!("the tree head says {stored_size} leaves, the log holds {rebuilt_size}"),
        );
        f.leaf_end = Some(stored_size.max(rebuilt_size));
        return Some(f);
    }
    if stored_root != rebuilt {
        let mut f = Finding::new(
            Kind::RootMismatch,
            Some(0),
            format!(
                "the tree head stores root {}, the tree rebuilt from the leaves has {}",
                hex::encode(stored_root),
                hex::encode(rebuilt)
            ),
        );
        f.leaf_end = Some(stored_size);
        return Some(f);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhirledger_merkle::Hasher;
    use fhirledger_merkle::{consistency_nodes, reference, Frontier};
    use sha2::{Digest, Sha256};

    fn sha(text: &str) -> [u8; 32] {
        Sha256::digest(text.as_bytes()).into()
    }

    fn leaf(index: u64, content: &str) -> LeafWithRow {
        let data = LeafData {
            kind: LeafKind::AuditEvent,
            resource_type: "AuditEvent".into(),
            id: format!("e{index}"),
            version_id: "1".into(),
            content_sha256: sha(content),
            recorded_micros: 1_000 + index as i64,
            salt: [index as u8; 32],
        };
        let leaf_data = data.encode().unwrap();
        LeafWithRow {
            leaf_index: index,
            resource_type: "AuditEvent".into(),
            resource_id: format!("e{index}"),
            version_id: "1".into(),
            leaf_data,
            row: Some(RowFacts {
                row: RowRef::AuditEvent {
                    seq: index as i64 + 100,
                },
                content_sha256: sha(content),
                recorded_micros: 1_000 + index as i64,
            }),
        }
    }

    fn log(n: u64) -> Vec<LeafWithRow> {
        (0..n).map(|i| leaf(i, &format!("event {i}"))).collect()
    }

    fn run(batches: &[&[LeafWithRow]]) -> Vec<Finding> {
        let mut checker = LeafChecker::new(
            batches
                .first()
                .and_then(|b| b.first())
                .map_or(0, |l| l.leaf_index),
        );
        let mut found = Vec::new();
        for (i, batch) in batches.iter().enumerate() {
            let ahead = batches.get(i + 1).copied().unwrap_or(&[]);
            checker.check_batch(batch, ahead, &mut |f| found.push(f));
        }
        found
    }

    #[test]
    fn an_untouched_log_has_no_findings() {
        let leaves = log(10);
        assert!(run(&[&leaves[..4], &leaves[4..8], &leaves[8..]]).is_empty());
    }

    #[test]
    fn a_modified_row_is_named_by_leaf_and_row() {
        let mut leaves = log(6);
        leaves[3].row.as_mut().unwrap().content_sha256 = sha("forged");
        let found = run(&[&leaves]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].kind, Kind::ModifiedRow);
        assert_eq!(found[0].leaf_index, Some(3));
        assert_eq!(
            found[0].row,
            Some(RowName {
                table: "audit_events",
                seq: 103
            })
        );
        assert_eq!(found[0].resource.as_deref(), Some("AuditEvent/e3"));

        let mut leaves = log(3);
        leaves[1].row.as_mut().unwrap().recorded_micros += 1;
        let found = run(&[&leaves]);
        assert_eq!(found[0].kind, Kind::ModifiedRow);
        assert!(
            found[0].detail.contains("recorded time"),
            "{}",
            found[0].detail
        );
    }

    #[test]
    fn a_deleted_row_and_a_missing_leaf() {
        let mut leaves = log(6);
        leaves[2].row = None;
        leaves.remove(4);
        let found = run(&[&leaves]);
        let kinds: Vec<_> = found.iter().map(|f| (f.kind, f.leaf_index)).collect();
        assert_eq!(
            kinds,
            vec![(Kind::DeletedRow, Some(2)), (Kind::MissingLeaf, Some(4))]
        );
    }

    #[test]
    fn swapped_rows_are_one_finding_within_and_across_batches() {
        for (a, b, split) in [(1usize, 2usize, 6usize), (2, 5, 4), (3, 4, 4)] {
            let mut leaves = log(8);
            let ra = leaves[a].row.clone().unwrap();
            let rb = leaves[b].row.clone().unwrap();
            leaves[a].row.as_mut().unwrap().content_sha256 = rb.content_sha256;
            leaves[a].row.as_mut().unwrap().recorded_micros = rb.recorded_micros;
            leaves[b].row.as_mut().unwrap().content_sha256 = ra.content_sha256;
            leaves[b].row.as_mut().unwrap().recorded_micros = ra.recorded_micros;
            let found = run(&[&leaves[..split], &leaves[split..]]);
            assert_eq!(found.len(), 1, "{a}<->{b}: {found:?}");
            assert_eq!(found[0].kind, Kind::SwappedRows);
            assert_eq!(found[0].leaf_index, Some(a as u64));
            assert_eq!(found[0].other_leaf_index, Some(b as u64));
        }
    }

    #[test]
    fn a_malformed_leaf() {
        let mut leaves = log(4);
        // The leaf's data rewritten to match a forged row; its node kept.
        let mut data = LeafData::decode(&leaves[1].leaf_data).unwrap();
        data.content_sha256 = sha("forged");
        leaves[1].leaf_data = data.encode().unwrap();
        leaves[1].row.as_mut().unwrap().content_sha256 = sha("forged");
        leaves[2].leaf_data = vec![9, 9, 9];
        let found = run(&[&leaves]);
        let kinds: Vec<_> = found.iter().map(|f| (f.kind, f.leaf_index)).collect();
        assert_eq!(kinds, vec![(Kind::MalformedLeaf, Some(2))]);
    }

    fn facts(rebuilt: Hash, stored: Option<Hash>, on_chain: Hash) -> CheckpointFacts {
        CheckpointFacts {
            tree_size: 8,
            range_start: 4,
            rebuilt,
            stored: stored.map(|s| s.to_vec()),
            stored_contract: Some(vec![1; 20]),
            contract: [1; 20],
            on_chain,
        }
    }

    #[test]
    fn checkpoint_findings() {
        let (r, x) = ([7u8; 32], [8u8; 32]);
        assert_eq!(check_checkpoint(&facts(r, Some(r), r)), None);
        assert_eq!(check_checkpoint(&facts(r, None, r)), None);
        let f = check_checkpoint(&facts(r, Some(r), [0; 32])).unwrap();
        assert_eq!(
            (f.kind, f.leaf_index, f.leaf_end),
            (Kind::NotOnChain, Some(4), Some(8))
        );
        assert!(f.detail.contains("no root"), "{}", f.detail);
        let f = check_checkpoint(&facts(r, Some(x), x)).unwrap();
        assert_eq!(f.kind, Kind::RootMismatch);
        assert!(f.detail.contains("rewritten"), "{}", f.detail);
        let f = check_checkpoint(&facts(r, Some(x), r)).unwrap();
        assert!(f.detail.contains("row was altered"), "{}", f.detail);
        // Re-anchored elsewhere: the row names another contract.
        let mut other = facts(r, Some(r), x);
        other.stored_contract = Some(vec![2; 20]);
        let f = check_checkpoint(&other).unwrap();
        assert_eq!(f.kind, Kind::NotOnChain);
        assert!(f.detail.contains("another contract"), "{}", f.detail);
        other.on_chain = r;
        let f = check_checkpoint(&other).unwrap();
        assert_eq!((f.kind, f.leaf_index), (Kind::WrongContract, Some(8)));
    }

    #[test]
    fn consistency_of_on_chain_roots() {
        let hasher = Keccak256Hasher;
        let leaves: Vec<Vec<u8>> = (0u32..13).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut frontier = Frontier::new(hasher);
        let mut nodes = std::collections::HashMap::new();
        for l in &leaves {
            for n in frontier.append(hasher.leaf_hash(l)).unwrap() {
                nodes.insert(n.id, n.hash);
            }
        }
        let hashes: Vec<Hash> = leaves.iter().map(|l| hasher.leaf_hash(l)).collect();
        let root6 = reference::root(&hasher, &hashes[..6]);
        let root13 = frontier.root();
        let wanted = consistency_nodes(6, 13).unwrap();
        let fetched: Vec<_> = wanted.ids().iter().map(|id| nodes[id]).collect();
        let proof = wanted.assemble(&hasher, &fetched).unwrap();
        assert_eq!(
            check_consistency(6, 13, &root6, &root13, &proof, true),
            None
        );
        // A forked earlier checkpoint on chain: the later one matches the
        // rebuilt tree, the earlier one is not a prefix of it.
        let forked = reference::root(
            &hasher,
            &[hashes[..5].to_vec(), vec![hasher.leaf_hash(&[0xff])]].concat(),
        );
        let f = check_consistency(6, 13, &forked, &root13, &proof, true).unwrap();
        assert_eq!(
            (f.kind, f.leaf_index, f.leaf_end),
            (Kind::Inconsistent, Some(6), Some(13))
        );
        assert_eq!(
            check_consistency(6, 13, &forked, &root13, &proof, false),
            None
        );
        assert_eq!(
            check_consistency(6, 13, &[0; 32], &root13, &proof, true),
            None
        );
    }

    #[test]
    fn truncation_and_head() {
        assert_eq!(check_truncation(10, 10, 8), None);
        let f = check_truncation(6, 10, 8).unwrap();
        assert_eq!(
            (f.kind, f.leaf_index, f.leaf_end),
            (Kind::Truncated, Some(6), Some(10))
        );
        let f = check_truncation(6, 0, 9).unwrap();
        assert!(f.detail.contains("contract's latest is 9"), "{}", f.detail);
        assert_eq!(check_head(5, &[1; 32], 5, &[1; 32]), None);
        assert_eq!(
            check_head(6, &[1; 32], 5, &[1; 32]).unwrap().kind,
            Kind::Truncated
        );
        assert_eq!(
            check_head(5, &[2; 32], 5, &[1; 32]).unwrap().kind,
            Kind::RootMismatch
        );
    }

    #[test]
    fn findings_order_by_leaf_then_kind_rows_without_leaf_last() {
        let inserted = inserted_row(
            "AuditEvent/x".into(),
            "1".into(),
            &RowRef::AuditEvent { seq: 1 },
        );
        let modified = Finding::new(Kind::ModifiedRow, Some(3), String::new());
        let truncated = Finding::new(Kind::Truncated, Some(3), String::new());
        let mut all = vec![inserted.clone(), truncated.clone(), modified.clone()];
        all.sort_by_key(Finding::order_key);
        assert_eq!(all, vec![modified, truncated, inserted]);
    }
}
