//! THE access path for reading FHIR data. Every read — read and vread, the
//! bytes of a Binary, search with its includes and totals, history, the
//! matching of conditional interactions, Bundle GET entries and the
//! authorization server's own searches — is a [`ReadOp`] run by [`read`]
//! (which opens a store transaction, read-only) or, inside a write's
//! transaction, by [`read_in`]. `read_in` is the single function where a
//! read is decided, applied and returned with the decision that allowed it:
//! Consent joins the decision there (through [`Guard`]), and the AuditEvent
//! of the access will be written there, in the same transaction.

use chrono::{DateTime, Utc};
use fhir_profiles::resource_types::HOSTED;
use fhir_profiles::search::query::{SearchRequest, Visibility};
use fhirledger_access::{Access, Interaction};
use fhirledger_audit::Interaction as AuditInteraction;
use fhirledger_postgres::{BinaryLocation, BinaryMeta, HistoryPage, StoredVersion, Tx};
/// The store reads run on (as [`crate::Database`] hands it to blocking
/// work) and a search's page, as the reads here take and return them.
pub use fhirledger_postgres::{PgStore, SearchPage};

use crate::audit::{patient_of, Touched};
use crate::conditions::Conditions;
use crate::error::{ServiceError, Status};
use crate::guard::Guard;
use crate::visibility::{criteria_of, is_visible};

/// What a read returned, with the decision that allowed it.
#[derive(Debug)]
pub struct Accessed<T> {
    pub value: T,
    pub access: Access,
}

/// One kind of read.
pub trait ReadOp {
    type Output;
    /// The access decision for this read (403 when refused).
    fn decide(&self, guard: &Guard) -> Result<Access, ServiceError>;
    /// Whether the read takes several statements that must see one state
    /// of the database (then it runs in a `REPEATABLE READ` snapshot).
    fn snapshot(&self, access: &Access) -> bool;
    /// The read itself, limited to what `access` allows.
    fn run(
        &self,
        tx: &mut Tx<'_>,
        guard: &Guard,
        access: &Access,
    ) -> Result<Self::Output, ServiceError>;
    /// What the read returned, for its AuditEvents: the interaction and
    /// each resource with its patient; `None` for reads that are part of a
    /// write (the write's own event records them).
    fn audited(&self, output: &Self::Output) -> Option<(AuditInteraction, Vec<Touched>)>;
    /// When the read answered 404 under restricted access: the resource it
    /// asked for, if it exists, with its patient, read past the restriction
    /// for the AuditEvent alone (never for the answer).
    fn hidden(
        &self,
        _store: &PgStore,
    ) -> Result<Option<(AuditInteraction, String, Option<String>)>, ServiceError> {
        Ok(None)
    }
}

/// A read that an operation records as its own event once it has answered
/// (`$proof`: one event for the whole access, and none claiming success
/// when the operation then fails). A refusal is still recorded as the
/// read's, by [`read`].
pub(crate) struct ForOperation<O>(pub O);

impl<O: ReadOp> ReadOp for ForOperation<O> {
    type Output = O::Output;
    fn decide(&self, guard: &Guard) -> Result<Access, ServiceError> {
        self.0.decide(guard)
    }
    fn snapshot(&self, access: &Access) -> bool {
        self.0.snapshot(access)
    }
    fn run(
        &self,
        tx: &mut Tx<'_>,
        guard: &Guard,
        access: &Access,
    ) -> Result<Self::Output, ServiceError> {
        self.0.run(tx, guard, access)
    }
    fn audited(&self, _: &Self::Output) -> Option<(AuditInteraction, Vec<Touched>)> {
        None
    }
    fn hidden(
        &self,
        store: &PgStore,
    ) -> Result<Option<(AuditInteraction, String, Option<String>)>, ServiceError> {
        self.0.hidden(store)
    }
}

/// Runs a read in its own read-only store transaction. Blocking.
pub fn read<O: ReadOp>(
    store: &PgStore,
    guard: &Guard,
    op: O,
) -> Result<Accessed<O::Output>, ServiceError> {
    let access = op.decide(guard)?;
    let snapshot = op.snapshot(&access);
    let result = store.reading(snapshot, |tx| read_in(tx, guard, &op, access.clone()));
    if let (Err(refused), Some(recorder)) = (&result, guard.recorder()) {
        // A 404 under restricted access may hide a resource that exists: its
        // patient must be able to see that someone tried.
        if refused.status == Status::NOT_FOUND && !access.is_all() {
            if let Some((interaction, target, patient)) = op.hidden(store)? {
                let why = refused
                    .issues
                    .first()
                    .map(|i| i.diagnostics.as_str())
                    .unwrap_or_default();
                recorder.refused(guard.caller(), interaction, 404, why, Some(target), patient);
            }
        }
    }
    result
}

/// Runs a read inside the caller's transaction (a write that must match
/// conditions, or [`read`]) under `access`, as decided by `op`.
pub(crate) fn read_in<O: ReadOp>(
    tx: &mut Tx<'_>,
    guard: &Guard,
    op: &O,
    access: Access,
) -> Result<Accessed<O::Output>, ServiceError> {
    let value = op.run(tx, guard, &access)?;
    if let (Some(recorder), Some((interaction, mut touched))) =
        (guard.recorder(), op.audited(&value))
    {
        crate::audit::grounds(tx, guard.caller(), &mut touched)?;
        recorder.read(guard.caller(), interaction, &touched, guard.performed());
    }
    Ok(Accessed { value, access })
}

/// Decides and runs a read inside the caller's transaction.
pub(crate) fn decide_and_read_in<O: ReadOp>(
    tx: &mut Tx<'_>,
    guard: &Guard,
    op: &O,
) -> Result<Accessed<O::Output>, ServiceError> {
    let access = op.decide(guard)?;
    read_in(tx, guard, op, access)
}

/// `GET {type}/{id}` and `GET {type}/{id}/_history/{vid}`: the version asked
/// for, a delete marker when the resource was deleted. For a caller whose
/// access is restricted, a resource outside it answers 404 exactly like one
/// that never existed (so does a deleted one: its former owner cannot be
/// checked any more).
#[derive(Debug, Clone)]
pub struct ReadResource<'a> {
    pub resource_type: &'a str,
    pub id: &'a str,
    pub version: Option<i64>,
}

impl ReadOp for ReadResource<'_> {
    type Output = StoredVersion;

    fn decide(&self, guard: &Guard) -> Result<Access, ServiceError> {
        guard.permit(self.resource_type, Interaction::Read)
    }

    fn snapshot(&self, access: &Access) -> bool {
        // The current version under criteria is one statement (below).
        !matches!(
            (self.version, access),
            (_, Access::All) | (None, Access::Only(_))
        )
    }

    fn run(
        &self,
        tx: &mut Tx<'_>,
        guard: &Guard,
        access: &Access,
    ) -> Result<StoredVersion, ServiceError> {
        let ReadResource {
            resource_type: rt,
            id,
            version,
        } = *self;
        if rt == AUDIT_EVENT {
            return read_audit_event(tx, id, version, access);
        }
        if let (None, Access::Only(criteria)) = (version, access) {
            let visibility = Visibility {
                criteria: criteria.clone(),
                includes: None,
            };
            return tx.read_visible(rt, id, &visibility)?.ok_or_else(|| {
                ServiceError::not_found(format!(
                    "{rt}/{id} does not exist within the access this token grants"
                ))
            });
        }
        if !access.is_all() {
            guard.check_visible(tx, rt, id, access)?;
        }
        let found = match version {
            None => tx.read(rt, id)?,
            Some(v) => tx.vread(rt, id, v)?,
        };
        found.ok_or_else(|| ServiceError::no_such_version(rt, id, version))
    }

    fn audited(&self, v: &StoredVersion) -> Option<(AuditInteraction, Vec<Touched>)> {
        Some((read_or_vread(self.version), vec![touched(v)]))
    }

    fn hidden(
        &self,
        store: &PgStore,
    ) -> Result<Option<(AuditInteraction, String, Option<String>)>, ServiceError> {
        let Some(current) = store.read(self.resource_type, self.id)? else {
            return Ok(None);
        };
        let Some(content) = current.content else {
            return Ok(None);
        };
        Ok(Some((
            read_or_vread(self.version),
            format!("{}/{}", self.resource_type, self.id),
            patient_of(self.resource_type, self.id, &content),
        )))
    }
}

const AUDIT_EVENT: &str = "AuditEvent";

/// An AuditEvent, from the trail's own table: one version, visible when
/// the caller's access criteria on AuditEvent hold for it.
fn read_audit_event(
    tx: &mut Tx<'_>,
    id: &str,
    version: Option<i64>,
    access: &Access,
) -> Result<StoredVersion, ServiceError> {
    let criteria = criteria_of(AUDIT_EVENT, access)?;
    let event = tx.read_audit_event(id, &criteria)?.ok_or_else(|| {
        ServiceError::not_found(format!(
            "AuditEvent/{id} does not exist within the access this token grants"
        ))
    })?;
    match version {
        None | Some(1) => Ok(event),
        Some(_) => Err(ServiceError::no_such_version(AUDIT_EVENT, id, version)),
    }
}

/// A read of the current version, or of the version asked for.
fn read_or_vread(version: Option<i64>) -> AuditInteraction {
    match version {
        None => AuditInteraction::Read,
        Some(_) => AuditInteraction::Vread,
    }
}

/// A stored version as a resource a read returned.
fn touched(v: &StoredVersion) -> Touched {
    Touched::of(&v.resource_type, &v.id, v.version_id, v.content.as_deref())
}

/// A Binary version and where its bytes are, read in one snapshot. The
/// bytes follow after the read was decided and audited: streamed
/// ([`BinaryBytes`]), or all at once ([`PgStore::binary_bytes`]) for a
/// Bundle entry that carries them in base64. A version's bytes never
/// change, so reading them after the snapshot reads what it saw.
#[derive(Debug, Clone)]
pub struct ReadBinary<'a> {
    pub id: &'a str,
    pub version: Option<i64>,
}

/// A Binary version and where its bytes are (`None` for a delete marker).
pub type BinaryVersion = (StoredVersion, Option<BinaryLocation>);

impl ReadOp for ReadBinary<'_> {
    type Output = BinaryVersion;

    fn decide(&self, guard: &Guard) -> Result<Access, ServiceError> {
        guard.permit("Binary", Interaction::Read)
    }

    fn snapshot(&self, _: &Access) -> bool {
        true
    }

    fn run(
        &self,
        tx: &mut Tx<'_>,
        guard: &Guard,
        access: &Access,
    ) -> Result<BinaryVersion, ServiceError> {
        let v = ReadResource {
            resource_type: "Binary",
            id: self.id,
            version: self.version,
        }
        .run(tx, guard, access)?;
        if v.is_deleted() {
            return Ok((v, None));
        }
        let at = tx
            .binary_location(&v.id, v.version_id)?
            .ok_or_else(|| ServiceError::internal("the bytes of this Binary are missing"))?;
        Ok((v, Some(at)))
    }

    fn audited(&self, (v, _): &BinaryVersion) -> Option<(AuditInteraction, Vec<Touched>)> {
        Some((read_or_vread(self.version), vec![touched(v)]))
    }
}

/// The bytes of a Binary version a [`ReadBinary`] read allowed, a chunk
/// ([`fhirledger_postgres::CHUNK_SIZE`]) at a time, each read in a
/// connection slot of its own: a large download neither sits in memory nor
/// holds a connection while the client is slow to take it.
pub struct BinaryBytes {
    db: std::sync::Arc<crate::Database>,
    at: BinaryLocation,
    offset: u64,
}

impl BinaryBytes {
    pub fn new(db: std::sync::Arc<crate::Database>, at: BinaryLocation) -> BinaryBytes {
        BinaryBytes { db, at, offset: 0 }
    }

    pub fn meta(&self) -> &BinaryMeta {
        &self.at.meta
    }

    /// The next chunk, `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ServiceError> {
        let at = self.at.clone();
        let offset = self.offset;
        let chunk = self
            .db
            .run_read(move |store| store.binary_chunk(&at, offset).map_err(ServiceError::from))
            .await?;
        if let Some(c) = &chunk {
            self.offset += c.len() as u64;
        }
        Ok(chunk)
    }

    /// Every remaining byte, for answers that must hold them (a Binary
    /// rendered as a FHIR resource carries them in base64).
    pub async fn read_to_end(mut self) -> Result<Vec<u8>, ServiceError> {
        let mut all = Vec::with_capacity(usize::try_from(self.at.meta.size).unwrap_or(0));
        while let Some(chunk) = self.next_chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }

    /// The chunks as a stream of a response body. A failure mid-way ends the
    /// stream with an error (logged), so the connection is cut short of the
    /// announced length rather than ending as if complete.
    pub fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, ServiceError>> + 'static {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut bytes = state?;
            match bytes.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok(bytes::Bytes::from(chunk)), Some(bytes))),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, "reading a Binary's bytes failed mid-way; the download is cut short");
                    Some((Err(e), None))
                }
            }
        })
    }
}

/// A search: one page of matches, its includes and the total asked for,
/// all limited to what the caller may see before paging and counting.
#[derive(Debug, Clone)]
pub struct Search<'a> {
    pub request: &'a SearchRequest,
}

impl ReadOp for Search<'_> {
    type Output = SearchPage;

    fn decide(&self, guard: &Guard) -> Result<Access, ServiceError> {
        guard.permit(&self.request.resource_type, Interaction::Search)
    }

    fn snapshot(&self, _: &Access) -> bool {
        // The page, its includes and its total are separate statements;
        // they read committed data, and a search racing writes may see a
        // resource in one and not another, as any paged search may.
        false
    }

    fn run(
        &self,
        tx: &mut Tx<'_>,
        guard: &Guard,
        access: &Access,
    ) -> Result<SearchPage, ServiceError> {
        let request = self.request;
        if request.resource_type == AUDIT_EVENT {
            let criteria = criteria_of(AUDIT_EVENT, access)?;
            return Ok(tx.search_audit_events(request, &criteria)?);
        }
        let with_includes = !request.includes.is_empty() || !request.revincludes.is_empty();
        let visibility = guard.search_visibility(&request.resource_type, access, with_includes)?;
        Ok(tx.search(request, &visibility)?)
    }

    fn audited(&self, page: &SearchPage) -> Option<(AuditInteraction, Vec<Touched>)> {
        let touched = page
            .matches
            .iter()
            .chain(&page.included)
            .map(Touched::found)
            .collect();
        Some((AuditInteraction::SearchType, touched))
    }
}

/// History of an instance, a type or the whole server, newest first.
#[derive(Debug, Clone)]
pub struct History<'a> {
    pub resource_type: Option<&'a str>,
    pub id: Option<&'a str>,
    pub since: Option<DateTime<Utc>>,
    /// The cursor: versions before this sequence number.
    pub before_seq: Option<i64>,
    pub count: i64,
}

impl ReadOp for History<'_> {
    type Output = HistoryPage;

    /// An instance's history needs read access to the resource (checked
    /// against its current version); a type's or the server's lists
    /// versions the way a search does, but old versions cannot be filtered
    /// by the search index, so it needs unrestricted search access to the
    /// type (to every type for the server's).
    fn decide(&self, guard: &Guard) -> Result<Access, ServiceError> {
        if self.id.is_some() {
            return guard.permit(self.resource_type.unwrap_or_default(), Interaction::Read);
        }
        let types: Vec<&str> = match self.resource_type {
            Some(t) => vec![t],
            None => HOSTED.to_vec(),
        };
        for t in types {
            if !guard.permit(t, Interaction::Search)?.is_all() {
                return Err(ServiceError::forbidden(format!(
                    "the history of {} lists every version of every resource; it needs \
                     unrestricted search access (a system/ scope). Search instead, or read \
                     the history of each resource",
                    self.resource_type.unwrap_or("the whole server")
                )));
            }
        }
        Ok(Access::All)
    }

    fn snapshot(&self, access: &Access) -> bool {
        self.id.is_some() && !access.is_all()
    }

    fn run(
        &self,
        tx: &mut Tx<'_>,
        guard: &Guard,
        access: &Access,
    ) -> Result<HistoryPage, ServiceError> {
        if let (Some(rt), Some(id)) = (self.resource_type, self.id) {
            let current = ReadResource {
                resource_type: rt,
                id,
                version: None,
            }
            .run(tx, guard, access)?;
            if rt == AUDIT_EVENT {
                // An event is never changed: its history is itself.
                let entries = (self.before_seq.is_none() && self.count > 0)
                    .then_some(current)
                    .into_iter()
                    .collect();
                return Ok(HistoryPage {
                    entries,
                    next_before_seq: None,
                });
            }
        } else if self.resource_type == Some(AUDIT_EVENT) {
            return Err(ServiceError::with_issues(
                Status::BAD_REQUEST,
                vec![fhir_profiles::outcome::Issue::error(
                    fhir_profiles::outcome::IssueType::NotSupported,
                    "AuditEvents are never changed, so they have no history beyond \
                     themselves: search the trail instead (GET AuditEvent?_sort=-date)",
                )],
            ));
        }
        Ok(tx.history(
            self.resource_type,
            self.id,
            self.since,
            self.before_seq,
            self.count,
        )?)
    }

    fn audited(&self, page: &HistoryPage) -> Option<(AuditInteraction, Vec<Touched>)> {
        let interaction = match (self.resource_type, self.id) {
            (Some(_), Some(_)) => AuditInteraction::HistoryInstance,
            (Some(_), None) => AuditInteraction::HistoryType,
            _ => AuditInteraction::HistorySystem,
        };
        Some((interaction, page.entries.iter().map(touched).collect()))
    }
}

/// The live resources that the conditions of a conditional interaction
/// match and the caller may read (the rest are treated as absent), at most
/// `limit` of them (2 tells one match from several).
#[derive(Debug, Clone)]
pub struct Matching<'a> {
    pub resource_type: &'a str,
    pub conditions: &'a Conditions,
    pub limit: usize,
}

impl ReadOp for Matching<'_> {
    type Output = Vec<String>;

    fn decide(&self, guard: &Guard) -> Result<Access, ServiceError> {
        guard.permit(self.resource_type, Interaction::Read)
    }

    fn snapshot(&self, _: &Access) -> bool {
        false
    }

    fn run(
        &self,
        tx: &mut Tx<'_>,
        guard: &Guard,
        access: &Access,
    ) -> Result<Vec<String>, ServiceError> {
        let mut request = SearchRequest::new(self.resource_type);
        request.criteria = self.conditions.criteria.clone();
        let through_documents = matches!(access, Access::ThroughDocuments(_));
        let visibility = Visibility {
            criteria: if through_documents {
                Vec::new()
            } else {
                criteria_of(self.resource_type, access)?
            },
            includes: None,
        };
        request.count = if through_documents {
            fhir_profiles::search::query::MAX_COUNT
        } else {
            self.limit
        };
        let mut ids: Vec<String> = tx
            .search(&request, &visibility)?
            .matches
            .into_iter()
            .map(|f| f.id)
            .collect();
        if through_documents {
            // A Binary is visible through the documents pointing at it.
            let mut visible = Vec::new();
            for id in ids {
                if is_visible(tx, guard.fhir_base(), self.resource_type, &id, access)? {
                    visible.push(id);
                }
            }
            ids = visible;
        }
        ids.truncate(self.limit);
        Ok(ids)
    }

    fn audited(&self, _: &Vec<String>) -> Option<(AuditInteraction, Vec<Touched>)> {
        None
    }
}
