//! Who an interaction runs for, and the access decision at the points where
//! it touches resources. A [`Guard`] travels with each interaction (REST or
//! Bundle entry) into the service and is asked before a resource is read or
//! replaced and after one is written, inside the same store transaction, so
//! a write that would land outside the caller's reach rolls back with
//! everything else.
//!
//! A resource the caller may not see is answered as if it did not exist
//! (404), so nothing — not even existence — leaks about other patients; a
//! write whose result would be outside the caller's reach is refused (403).

use std::collections::BTreeMap;
use std::sync::Arc;

use fhir_profiles::resource_types::HOSTED;
use fhir_profiles::search::query::Visibility;
use fhirledger_access::{decide, verb, Access, Caller, Interaction, Policy};
use fhirledger_postgres::Tx;

use crate::audit::Recorder;
use crate::error::ServiceError;
use crate::visibility::{binary_claimed_by_others, criteria_of, is_visible, linked_binaries};

/// Who an interaction runs for.
#[derive(Clone, Debug)]
pub enum Principal {
    /// A person or client holding one of our access tokens.
    Caller(Arc<Caller>),
    /// The server itself: command-line tools, demo data, start-up and
    /// maintenance work. Made only by [`Guard::for_server`], which names why.
    Server { purpose: &'static str },
}

/// The principal of one interaction, with the FHIR base its criteria use.
#[derive(Clone, Debug)]
pub struct Guard {
    principal: Principal,
    fhir_base: String,
    policy: Policy,
    /// Where the interaction's AuditEvents are collected; `None` for the
    /// server's own work and for callers outside an HTTP request.
    recorder: Option<Arc<Recorder>>,
    /// The FHIR interaction performed for a request that is not itself one
    /// (a portal page's search): recorded as the query's description, beside
    /// the raw request.
    performing: Option<String>,
}

impl Guard {
    /// A guard for an authenticated caller: the only kind a FHIR request gets.
    pub fn for_caller(caller: Arc<Caller>, fhir_base: &str, policy: Policy) -> Guard {
        Guard {
            principal: Principal::Caller(caller),
            fhir_base: fhir_base.to_string(),
            policy,
            recorder: None,
            performing: None,
        }
    }

    /// The same guard, collecting the interaction's AuditEvents in `recorder`.
    pub fn recording(mut self, recorder: Arc<Recorder>) -> Guard {
        self.recorder = Some(recorder);
        self
    }

    /// The same guard, for performing `interaction` (`GET
    /// DocumentReference?patient=…`) on behalf of a request that is not that
    /// FHIR interaction itself, such as a portal page: its events describe
    /// the query performed, beside the page's raw request.
    pub fn performing(mut self, interaction: String) -> Guard {
        self.performing = Some(interaction);
        self
    }

    /// See [`Guard::performing`].
    pub fn performed(&self) -> Option<&str> {
        self.performing.as_deref()
    }

    /// Where this interaction's AuditEvents are collected.
    pub fn recorder(&self) -> Option<&Recorder> {
        self.recorder.as_deref()
    }

    /// The server acting for itself, unrestricted: for the command-line
    /// tools, `dev`'s demo data and maintenance, never for a request.
    /// `purpose` says which, for logs and (later) the audit trail.
    pub fn for_server(fhir_base: &str, purpose: &'static str) -> Guard {
        Guard {
            principal: Principal::Server { purpose },
            fhir_base: fhir_base.to_string(),
            policy: Policy::default(),
            recorder: None,
            performing: None,
        }
    }

    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The authenticated caller; `None` for the server's own work.
    pub fn caller(&self) -> Option<&Caller> {
        match &self.principal {
            Principal::Caller(c) => Some(c),
            Principal::Server { .. } => None,
        }
    }

    pub fn fhir_base(&self) -> &str {
        &self.fhir_base
    }

    /// The deployment's access policy.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The decision for an interaction on a type; 403 when not permitted at all.
    pub fn permit(
        &self,
        resource_type: &str,
        interaction: Interaction,
    ) -> Result<Access, ServiceError> {
        match &self.principal {
            Principal::Server { .. } => Ok(Access::All),
            Principal::Caller(c) => Ok(decide(c, self.policy, resource_type, interaction)?),
        }
    }

    /// What a search of `resource_type` may see: its matches (and so its
    /// pages and totals) by `access`, the search decision; when it includes
    /// others, those by the read decision of each type.
    pub(crate) fn search_visibility(
        &self,
        resource_type: &str,
        access: &Access,
        with_includes: bool,
    ) -> Result<Visibility, ServiceError> {
        let criteria = criteria_of(resource_type, access)?;
        let includes = match (&self.principal, with_includes) {
            (Principal::Caller(_), true) => Some(self.includable()?),
            _ => None,
        };
        Ok(Visibility { criteria, includes })
    }

    /// Per type, what included resources must match (types the caller may
    /// not read are absent, so they are never included).
    fn includable(
        &self,
    ) -> Result<BTreeMap<String, Vec<fhir_profiles::search::query::Criterion>>, ServiceError> {
        let mut map = BTreeMap::new();
        for &t in HOSTED {
            match self.permit(t, Interaction::Read) {
                Ok(Access::ThroughDocuments(_)) | Err(_) => continue,
                Ok(access) => {
                    map.insert(t.to_string(), criteria_of(t, &access)?);
                }
            }
        }
        Ok(map)
    }

    /// 404 unless the live resource is visible under `access`.
    pub(crate) fn check_visible(
        &self,
        tx: &mut Tx<'_>,
        resource_type: &str,
        id: &str,
        access: &Access,
    ) -> Result<(), ServiceError> {
        if is_visible(tx, &self.fhir_base, resource_type, id, access)? {
            Ok(())
        } else {
            Err(ServiceError::not_found(format!(
                "{resource_type}/{id} does not exist within the access this token grants"
            )))
        }
    }

    /// Before an update or delete: when the target exists, it must be visible.
    pub(crate) fn check_target(
        &self,
        tx: &mut Tx<'_>,
        resource_type: &str,
        id: &str,
        interaction: Interaction,
    ) -> Result<(), ServiceError> {
        let access = self.permit(resource_type, interaction)?;
        if access.is_all() {
            return Ok(());
        }
        let exists = tx.read(resource_type, id)?.is_some_and(|v| !v.is_deleted());
        if !exists {
            return Ok(());
        }
        self.check_visible(tx, resource_type, id, &access)
    }

    /// After a write, inside its transaction: the new version must be within reach.
    pub(crate) fn check_written(
        &self,
        tx: &mut Tx<'_>,
        resource_type: &str,
        id: &str,
        interaction: Interaction,
    ) -> Result<(), ServiceError> {
        let access = self.permit(resource_type, interaction)?;
        // A new Binary is reachable only once a document points at it; until
        // then nobody restricted can read it, so creating it reveals nothing.
        if interaction == Interaction::Create && matches!(access, Access::ThroughDocuments(_)) {
            return Ok(());
        }
        if is_visible(tx, &self.fhir_base, resource_type, id, &access)? {
            if resource_type == "DocumentReference" {
                self.check_binary_links(tx, id)?;
            }
            Ok(())
        } else {
            Err(ServiceError::forbidden(format!(
                "this {resource_type} would be outside what the access token may {}: \
                 it must belong to the patient or hospital the token is for",
                verb(interaction)
            )))
        }
    }

    /// A document the caller wrote may point only at Binaries that no hidden
    /// document points at: otherwise anyone knowing a Binary's id could open
    /// it by pointing a document of their own at it.
    fn check_binary_links(&self, tx: &mut Tx<'_>, id: &str) -> Result<(), ServiceError> {
        let Ok(Access::ThroughDocuments(documents)) = self.permit("Binary", Interaction::Read)
        else {
            return Ok(());
        };
        let Some(content) = tx.read("DocumentReference", id)?.and_then(|v| v.content) else {
            return Ok(());
        };
        let document: serde_json::Value = serde_json::from_str(&content)
            .map_err(|e| ServiceError::internal(format!("stored JSON is corrupt: {e}")))?;
        for binary in linked_binaries(&self.fhir_base, &document) {
            if binary_claimed_by_others(tx, &self.fhir_base, &binary, &documents)? {
                return Err(ServiceError::forbidden(format!(
                    "the document points at Binary/{binary}, which belongs to documents \
                     this access token may not see"
                )));
            }
        }
        Ok(())
    }
}
