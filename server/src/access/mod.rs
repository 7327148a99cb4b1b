//! Access control. The pure half: SMART scopes and what they allow
//! (parsing and rendering, granting requested ∩ client ∩ role ceiling, the
//! roles' ceilings, plain-words descriptions for the approval page), unit-
//! tested without I/O. The applied half: the [`caller`] a token describes,
//! the one access [`decision`], and how it is [`enforce`]d in searches and
//! single-resource checks through a per-interaction [`guard`].

pub mod allow;
pub mod caller;
pub mod decision;
pub mod describe;
pub mod enforce;
pub mod grant;
pub mod guard;
pub mod roles;
pub mod scope;

#[cfg(test)]
mod strategies;

pub use allow::{Allowance, Allowed, ContextGrant, Filter, Interaction};
pub use describe::{describe, describe_scope, PatientRecord, ScopeDescription};
pub use grant::{intersect, is_subset};
pub use roles::{Role, UnknownRole, ADMIN_SCOPE};
pub use scope::{
    Context, Permissions, ResourceScope, ResourceScopeProblem, Scope, ScopeEntry, ScopeError,
    ScopeSet, MAX_SCOPES,
};
