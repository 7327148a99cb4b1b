//! Access control, pure: SMART scopes and what they allow (parsing and
//! rendering, granting requested ∩ client ∩ role ceiling, the roles'
//! ceilings, plain words for the approval page), the [`Caller`] a token
//! describes, and the one access [`decide`]: an interaction on a type is
//! refused, or allowed on everything, or on the resources meeting typed
//! search criteria that the store applies in SQL. No I/O: the FHIR service
//! applies the answer inside its store transactions.

pub mod allow;
pub mod caller;
mod confine;
pub mod consent;
pub mod decision;
pub mod describe;
pub mod grant;
pub mod policy;
pub mod roles;
pub mod scope;

#[cfg(test)]
mod strategies;

pub use allow::{Allowance, Allowed, ContextGrant, Filter, Interaction};
pub use caller::{practitioner_of, Caller, Identity};
pub use confine::{authored_by, hospital as hospital_criterion, reader as reader_of};
pub use decision::{decide, verb, Access, Denied};
pub use describe::{describe, describe_scope, PatientRecord, ScopeDescription};
pub use grant::{intersect, is_subset};
pub use policy::{ConsentDefault, Policy};
pub use roles::{Role, UnknownRole, ADMIN_SCOPE};
pub use scope::{
    Context, Permissions, ResourceScope, ResourceScopeProblem, Scope, ScopeEntry, ScopeError,
    ScopeSet, MAX_SCOPES,
};
