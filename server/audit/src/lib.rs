//! fhirledger-audit: what one access was ([`event`]) and the IHE BALP
//! AuditEvent that records it ([`balp`]). Pure: no I/O, no clock (the
//! caller says when), so every shape is tested without a server and the
//! service decides where and when an event is stored (ARCHITECTURE.md,
//! "Audit").

pub mod balp;
pub mod event;
pub mod request;
pub mod terms;

pub use balp::{audit_event, pattern_of, recorded_event, Pattern, CLIENT_RECORDED_SYSTEM};
pub use event::{
    Access, Action, Client, Coding, Interaction, Kind, Observer, Outcome, Person, Query,
    SecurityEvent,
};
pub use request::interaction_of;
pub use terms::{index, index_value, subject, subject_in, Indexed};
