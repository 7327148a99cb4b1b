//! Batch and transaction Bundles (`POST /fhir`, FHIR R4 http.html#transaction).
//!
//! Work is split so that the database transaction does database work only:
//!
//! 1. [`plan`] (CPU only, before any connection is taken): the Bundle is parsed
//!    once, strictly, as a whole; each entry's `request` is read; in a
//!    transaction every POST gets its id now and every `urn:uuid:`/`urn:oid:`
//!    (or other `fullUrl`) reference between entries is rewritten to
//!    `Type/id` (and so is an `Attachment.url` naming an entry, for MHD's
//!    DocumentReference → Binary); then each resource is validated exactly
//!    like a REST body (`prepare_value`).
//! 2. [`execute`]: a transaction runs in ONE database transaction: every
//!    criterion is locked up front (sorted, so concurrent Bundles cannot
//!    deadlock on them), DELETEs run, conditional targets (`ifNoneExist`,
//!    `PUT Type?criteria`, conditional references) are resolved, references
//!    to entries whose id a condition changed are fixed, then POSTs (in one
//!    multi-row insert) and PUTs (in (type, id) order) are written. Any
//!    failure rolls everything back and answers with that entry's status and
//!    OperationOutcome. GET/HEAD entries are read after the commit: they
//!    change nothing, so a missing resource is reported in its entry
//!    (404/410/304) rather than undoing the writes. A batch runs each entry in
//!    its own database transaction, in order.
//!
//! Entry responses carry status, location, etag and lastModified; the
//! resource only with `Prefer: return=representation` (GET entries always),
//! an informational outcome with `Prefer: return=OperationOutcome`.
//!
//! The modules follow that path: `parse` (the body) → `request` (each
//! entry's `request`) → `links` (references between entries) → `plan`
//! (validated [`planned::Planned`] entries) → `execute` (the order of work),
//! `writes` and `resolve` (inside the database transaction), `reads`
//! (GET/HEAD after it) → `response` (the response Bundle). `matching` finds
//! the entries that criteria name; `errors` places errors at their entry.

mod errors;
mod execute;
mod links;
mod matching;
mod parse;
mod plan;
mod planned;
mod reads;
mod request;
mod resolve;
mod response;
mod writes;

pub use execute::execute;
pub use plan::plan;

use crate::error::ServiceError;
use matching::Index;
use planned::Planned;

/// `Bundle.type` of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleKind {
    Batch,
    Transaction,
}

impl BundleKind {
    /// `Bundle.type` of the answer.
    fn response_type(self) -> &'static str {
        match self {
            BundleKind::Batch => "batch-response",
            BundleKind::Transaction => "transaction-response",
        }
    }
}

/// What entry responses carry besides status, location, etag and
/// lastModified (from `Prefer: return=`). Unlike a REST write, the default is
/// minimal: bulk loads should not get their Bundle echoed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EntryReturn {
    #[default]
    Minimal,
    Representation,
    OperationOutcome,
}

/// How to run a planned Bundle.
#[derive(Debug, Clone)]
pub struct BundleOptions {
    /// `{public base}/fhir`.
    pub fhir_base: String,
    /// The largest Binary accepted.
    pub limit: u64,
    /// `Prefer: handling=lenient`, handed to searches.
    pub lenient: bool,
    pub returns: EntryReturn,
    /// The caller's access, checked on every entry.
    pub guard: crate::guard::Guard,
}

/// A Bundle read, checked and validated, ready to run.
pub struct Plan {
    kind: BundleKind,
    /// In request order. A transaction's are all `Ok` (any error fails it
    /// while planning); a batch keeps each entry's own error.
    entries: Vec<Result<Planned, ServiceError>>,
    /// A batch's entries as their requests name them (interaction and
    /// target), for the AuditEvents of those that fail.
    requested: Vec<(fhirledger_audit::Interaction, Option<String>)>,
    /// (type, identifier value) → write entries carrying that identifier;
    /// transactions only, to resolve conditional references to entries.
    by_identifier: Index,
}

impl Plan {
    pub fn kind(&self) -> BundleKind {
        self.kind
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
