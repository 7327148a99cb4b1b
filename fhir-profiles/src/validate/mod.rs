//! This server's validation rules, driven by the official StructureDefinition snapshots and
//! terminology of the hosted types (generated into data/, not retyped), plus the tightening
//! this server adds on top of base R4.

mod attachment;
mod bindings;
mod identifiers;
mod references;
mod rules;
mod walk;

use serde_json::Value;

use crate::outcome::Issue;
use crate::structure;

pub use identifiers::identifiers;

/// This server's rules, driven by the official StructureDefinition snapshots and terminology
/// (generated, not retyped), for the hosted types (DocumentReference, Consent, Patient,
/// Practitioner, PractitionerRole, Organization, Binary, AuditEvent):
///  - the structural checks of `parse_resource` (unknown elements, JSON types, lexical forms);
///  - cardinality (min/max) of every element in the snapshot, including backbone elements and
///    choice types `[x]`;
///  - codes of `required` bindings, against the value set expanded from the terminology data,
///    or the official schema's enumeration where the value set is not in the terminology data;
///    bindings to `mimetypes` and `days-of-week` are not checked (see data/README.md).
///    Required bindings inside data types (Identifier.use, ContactPoint.system, ...) are
///    checked against the schema's enumerations;
///  - Reference targets (`Type/id`, `Type/id/_history/v`, absolute URLs ending so, `#contained`)
///    must be of a type the element allows; untyped references are accepted;
///  - this server's tightening (see `rules.rs`): DocumentReference.subject → Patient,
///    DocumentReference.author → Practitioner | PractitionerRole | Organization | Patient,
///    Consent.patient required and → Patient;
///  - every Attachment with `data`: valid base64, `size` = decoded length, `hash` = base64(SHA-1);
///  - narrative free of scripts, forms, frames and event handlers (txt-1); contained
///    resources not nested (dom-2) and without versionId/lastUpdated (dom-4); unreferenced
///    contained resources are a warning (dom-3).
///
/// Resources of other types get the structural, Attachment and narrative checks only.
pub fn validate_resource(resource: &Value) -> Vec<Issue> {
    let mut issues = structure::check_resource(resource);
    issues.extend(walk::check(resource));
    issues
}

/// `validate_resource` for a value that came out of `format::parse_resource`, which already
/// ran the structural checks: the rules only, without walking the structure a second time.
pub fn validate_parsed(resource: &Value) -> Vec<Issue> {
    walk::check(resource)
}
