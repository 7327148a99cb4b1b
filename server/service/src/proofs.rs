//! Proofs over the Merkle log: `AuditEvent/{id}/$proof`,
//! `Consent/{id}/_history/{vid}/$proof` (the leaf's inclusion in the first
//! anchored checkpoint that covers it) and `$consistency` (between two
//! anchored checkpoints). Everything an auditor needs to check one without
//! our code: the leaf's data (salt included), the path, the root and where
//! it is anchored. The README's "Proving an access" says how to check one.
//!
//! Who may ask: compliance officers, the patient whose event or Consent it
//! is, and `system/` clients allowed to read AuditEvents. The event or
//! Consent version is read through the one read path first, so a proof is
//! never given for something the caller could not read (404 alike), and
//! that read is audited like any other; the proof is audited as the
//! operation it is.

use chrono::{Duration, SecondsFormat, Utc};
use fhir_profiles::outcome::IssueType;
use fhirledger_access::{Interaction, Role};
use fhirledger_merkle::{consistency_nodes, hex_0x, Hash, Hasher, Keccak256Hasher, LeafData};
use fhirledger_postgres::anchors::{CheckpointRow, LeafInclusion};
use fhirledger_postgres::PgStore;

use crate::audit::Touched;
use crate::error::{ServiceError, Status};
use crate::guard::Guard;
use crate::reads::{self, ForOperation, ReadResource};

/// What a leaf's proof is of.
#[derive(Debug, Clone, Copy)]
pub enum Proven<'a> {
    AuditEvent { id: &'a str },
    ConsentVersion { id: &'a str, version: i64 },
}

/// Where a checkpoint is anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub tree_size: u64,
    pub root: String,
    pub chain_id: u64,
    pub contract: String,
    pub tx_hash: String,
    pub block_number: u64,
}

/// An inclusion proof of one leaf in an anchored checkpoint. Hashes are
/// `0x`-prefixed lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub leaf_data: String,
    pub leaf_hash: String,
    pub salt: String,
    /// From the leaf's sibling up to the root.
    pub path: Vec<String>,
    pub anchor: Anchor,
}

/// A consistency proof between two anchored checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    pub from: Anchor,
    pub to: Anchor,
    pub path: Vec<String>,
}

fn anchor_of(c: &CheckpointRow) -> Anchor {
    Anchor {
        tree_size: c.tree_size,
        root: hex_0x(&c.root),
        chain_id: c.chain_id,
        contract: hex_0x(&c.contract),
        tx_hash: hex_0x(&c.tx_hash),
        block_number: c.block_number,
    }
}

/// 403 unless the caller is one proofs are for: compliance officers,
/// patients (their own records: the read path decides which), `system/`
/// clients allowed to read AuditEvents, and the server itself.
fn may_ask(guard: &Guard, operation: &str) -> Result<(), ServiceError> {
    match guard.caller().map(|c| c.role) {
        None | Some(Some(Role::ComplianceOfficer)) | Some(Some(Role::Patient)) => Ok(()),
        Some(None) => guard.permit("AuditEvent", Interaction::Read).map(|_| ()),
        Some(Some(_)) => Err(ServiceError::forbidden(format!(
            "{operation} answers compliance officers, the patient the record is about and backend clients allowed to read AuditEvents"
        ))),
    }
}

/// Why a leaf has no proof yet: 409, saying when to expect one.
fn not_yet(what: &str, stage: &str) -> ServiceError {
    // Sequencing takes under a second and anchoring a few (the worker's
    // interval plus a block); retrying after this is enough in the normal case.
    let expected = (Utc::now() + Duration::seconds(10)).to_rfc3339_opts(SecondsFormat::Secs, true);
    ServiceError::new(
        Status::CONFLICT,
        IssueType::Conflict,
        format!("{what} is {stage}; its proof is expected by {expected}"),
    )
}

fn internal(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::internal(format!("the Merkle log: {e}"))
}

/// `$proof` of an AuditEvent or a Consent version. Blocking.
pub fn inclusion_proof(
    store: &PgStore,
    guard: &Guard,
    proven: Proven<'_>,
) -> Result<InclusionProof, ServiceError> {
    may_ask(guard, "$proof")?;
    let (resource_type, id, version) = match proven {
        Proven::AuditEvent { id } => ("AuditEvent", id, None),
        Proven::ConsentVersion { id, version } => ("Consent", id, Some(version)),
    };
    // The read is this operation's: recorded once, as `$proof`, after the
    // proof is made (a 409 is recorded as that, not as a successful read).
    let read = reads::read(
        store,
        guard,
        ForOperation(ReadResource {
            resource_type,
            id,
            version,
        }),
    )?;
    let version_id = version.map_or_else(|| "1".to_string(), |v| v.to_string());
    let what = format!("{resource_type}/{id} version {version_id}");
    let reference = format!("{resource_type}/{id}/_history/{version_id}");
    let touched = Touched {
        patient: read
            .value
            .content
            .as_deref()
            .and_then(|c| crate::audit::patient_of(resource_type, id, c)),
        // What the read path's `audit::grounds` gives an AuditEvent or a
        // Consent: only documents have grounds of their own in the database.
        rule: guard
            .caller()
            .map(|c| crate::audit::context_rule(c, &reference).to_string()),
        reference,
    };
    let (leaf, checkpoint, path) = match store.leaf_inclusion(resource_type, id, &version_id)? {
        LeafInclusion::NotInLog => return Err(not_yet(&what, "not yet in the log")),
        LeafInclusion::NotAnchored => {
            return Err(not_yet(&what, "in the log but not yet anchored"))
        }
        LeafInclusion::Anchored {
            leaf,
            checkpoint,
            nodes,
            hashes,
        } => {
            let path = nodes
                .assemble(&Keccak256Hasher, &hashes)
                .map_err(internal)?;
            (leaf, checkpoint, path)
        }
    };
    let data = LeafData::decode(&leaf.leaf_data).map_err(internal)?;
    if let Some(recorder) = guard.recorder() {
        recorder.add(recorder.operation_on(guard.caller(), "$proof", &touched));
    }
    Ok(InclusionProof {
        leaf_index: leaf.leaf_index,
        leaf_hash: hex_0x(&Keccak256Hasher.leaf_hash(&leaf.leaf_data)),
        leaf_data: hex_0x(&leaf.leaf_data),
        salt: hex_0x(&data.salt),
        path: path.iter().map(|h: &Hash| hex_0x(h)).collect(),
        anchor: anchor_of(&checkpoint),
    })
}

/// Which of these AuditEvents an anchored checkpoint covers: the
/// "verified on chain" marks of a page of a trail the caller has just read
/// through the read path (whether a visible event is anchored says nothing
/// of anyone's data; the proof of one is [`inclusion_proof`]). Blocking.
pub fn anchored_events(
    store: &PgStore,
    guard: &Guard,
    ids: &[String],
) -> Result<std::collections::HashSet<String>, ServiceError> {
    guard.permit("AuditEvent", Interaction::Search)?;
    Ok(store.anchored_among("AuditEvent", ids)?)
}

/// `$consistency?from=N&to=M` between two anchored sizes. Blocking.
pub fn consistency_proof(
    store: &PgStore,
    guard: &Guard,
    from: u64,
    to: u64,
) -> Result<ConsistencyProof, ServiceError> {
    may_ask(guard, "$consistency")?;
    if from > to {
        return Err(ServiceError::bad_request(format!(
            "'from' ({from}) must not be larger than 'to' ({to})"
        )));
    }
    let anchored = |size: u64| -> Result<CheckpointRow, ServiceError> {
        store.checkpoint_at(size)?.ok_or_else(|| {
            ServiceError::new(
                Status::NOT_FOUND,
                IssueType::NotFound,
                format!(
                    "no checkpoint of size {size} is anchored; $ledger-status lists the latest"
                ),
            )
        })
    };
    let (first, second) = (anchored(from)?, anchored(to)?);
    let nodes = consistency_nodes(from, to).map_err(internal)?;
    let fetched = store.log_nodes(nodes.ids())?;
    let path = nodes
        .assemble(&Keccak256Hasher, &fetched)
        .map_err(internal)?;
    if let Some(recorder) = guard.recorder() {
        recorder.add(recorder.operation(guard.caller(), "$consistency", None, Vec::new(), None));
    }
    Ok(ConsistencyProof {
        from: anchor_of(&first),
        to: anchor_of(&second),
        path: path.iter().map(|h| hex_0x(h)).collect(),
    })
}
