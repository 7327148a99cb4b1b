//! The access decision at the points where a request touches resources: a
//! [`Guard`] travels with each interaction (REST or Bundle entry) and is
//! asked before a resource is read or replaced and after one is written,
//! inside the same database transaction, so a write that would land outside
//! the caller's reach is rolled back with everything else.
//!
//! A resource the caller may not see is answered as if it did not exist
//! (404), so nothing — not even existence — leaks about other patients; a
//! write whose result would be outside the caller's reach is refused (403).

use std::sync::Arc;

use actix_web::http::StatusCode;
use fhir_profiles::outcome::IssueType;
use fhir_profiles::search::query::SearchRequest;
use fhirledger_postgres::{SearchPage, StoreError, Tx};

use crate::access::allow::Interaction;
use crate::access::caller::Caller;
use crate::access::decision::{decide, Access};
use crate::access::enforce::{
    binary_claimed_by_others, is_visible, linked_binaries, restrict_search,
};
use crate::http::error::ApiError;

/// The caller of one interaction, with the FHIR base its filters use.
#[derive(Clone, Debug)]
pub struct Guard {
    caller: Option<Arc<Caller>>,
    fhir_base: String,
}

impl Guard {
    /// A guard for an authenticated caller.
    pub fn new(caller: Arc<Caller>, fhir_base: &str) -> Guard {
        Guard {
            caller: Some(caller),
            fhir_base: fhir_base.to_string(),
        }
    }

    /// No restrictions: the server's own maintenance and command-line tools.
    pub fn unrestricted(fhir_base: &str) -> Guard {
        Guard {
            caller: None,
            fhir_base: fhir_base.to_string(),
        }
    }

    pub fn caller(&self) -> Option<&Caller> {
        self.caller.as_deref()
    }

    /// The decision for an interaction on a type; 403 when not permitted at all.
    pub fn permit(
        &self,
        resource_type: &str,
        interaction: Interaction,
    ) -> Result<Access, ApiError> {
        match &self.caller {
            None => Ok(Access::All),
            Some(c) => decide(c, resource_type, interaction),
        }
    }

    /// Confines a parsed search (matches, totals and includes) to what the caller may see.
    pub fn restrict_search(&self, request: &mut SearchRequest) -> Result<(), ApiError> {
        match &self.caller {
            None => Ok(()),
            Some(c) => restrict_search(c, &self.fhir_base, request),
        }
    }

    /// 404 unless the live resource is visible for `interaction`.
    pub fn check_visible(
        &self,
        resource_type: &str,
        id: &str,
        interaction: Interaction,
        search: &mut dyn FnMut(&SearchRequest) -> Result<SearchPage, StoreError>,
    ) -> Result<(), ApiError> {
        let access = self.permit(resource_type, interaction)?;
        if is_visible(&self.fhir_base, resource_type, id, &access, search)? {
            Ok(())
        } else {
            Err(ApiError::not_found(format!(
                "{resource_type}/{id} does not exist within the access this token grants"
            )))
        }
    }

    /// Before an update or delete: when the target exists, it must be visible.
    pub fn check_target(
        &self,
        tx: &mut Tx<'_>,
        resource_type: &str,
        id: &str,
        interaction: Interaction,
    ) -> Result<(), ApiError> {
        let access = self.permit(resource_type, interaction)?;
        if access.is_all() {
            return Ok(());
        }
        let exists = tx.read(resource_type, id)?.is_some_and(|v| !v.is_deleted());
        if !exists {
            return Ok(());
        }
        self.check_visible(resource_type, id, interaction, &mut |r| tx.search(r))
    }

    /// After a write, inside its transaction: the new version must be within reach.
    pub fn check_written(
        &self,
        tx: &mut Tx<'_>,
        resource_type: &str,
        id: &str,
        interaction: Interaction,
    ) -> Result<(), ApiError> {
        let access = self.permit(resource_type, interaction)?;
        // A new Binary is reachable only once a document points at it; until
        // then nobody restricted can read it, so creating it reveals nothing.
        if interaction == Interaction::Create && matches!(access, Access::ThroughDocuments(_)) {
            return Ok(());
        }
        if is_visible(&self.fhir_base, resource_type, id, &access, &mut |r| {
            tx.search(r)
        })? {
            if resource_type == "DocumentReference" {
                self.check_binary_links(tx, id)?;
            }
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                IssueType::Forbidden,
                format!(
                    "this {resource_type} would be outside what the access token may {}: \
                     it must belong to the patient or hospital the token is for",
                    verb(interaction)
                ),
            ))
        }
    }

    /// A document the caller wrote may point only at Binaries that no hidden
    /// document points at: otherwise anyone knowing a Binary's id could open
    /// it by pointing a document of their own at it.
    fn check_binary_links(&self, tx: &mut Tx<'_>, id: &str) -> Result<(), ApiError> {
        let Ok(Access::ThroughDocuments(documents)) = self.permit("Binary", Interaction::Read)
        else {
            return Ok(());
        };
        let Some(content) = tx.read("DocumentReference", id)?.and_then(|v| v.content) else {
            return Ok(());
        };
        let document: serde_json::Value = serde_json::from_str(&content)
            .map_err(|e| ApiError::internal(format!("stored JSON is corrupt: {e}")))?;
        for binary in linked_binaries(&self.fhir_base, &document) {
            if binary_claimed_by_others(&self.fhir_base, &binary, &documents, &mut |r| {
                tx.search(r)
            })? {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    IssueType::Forbidden,
                    format!(
                        "the document points at Binary/{binary}, which belongs to documents \
                         this access token may not see"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The matches of a condition that the caller may read; the rest are
    /// treated as absent.
    pub fn visible_matches(
        &self,
        tx: &mut Tx<'_>,
        resource_type: &str,
        ids: Vec<String>,
    ) -> Result<Vec<String>, ApiError> {
        let access = self.permit(resource_type, Interaction::Read)?;
        if access.is_all() {
            return Ok(ids);
        }
        let mut visible = Vec::with_capacity(ids.len());
        for id in ids {
            if is_visible(&self.fhir_base, resource_type, &id, &access, &mut |r| {
                tx.search(r)
            })? {
                visible.push(id);
            }
        }
        Ok(visible)
    }
}

fn verb(interaction: Interaction) -> &'static str {
    match interaction {
        Interaction::Create => "create",
        Interaction::Read => "read",
        Interaction::Update => "update",
        Interaction::Delete => "delete",
        Interaction::Search => "search",
    }
}
