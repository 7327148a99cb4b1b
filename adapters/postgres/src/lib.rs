//! PostgreSQL adapter of fhirledger: the versioned resource store (diesel over a
//! blocking r2d2 pool), Binary bytes as streamed large objects, embedded
//! migrations, and private clusters for `fhirledger dev` and the tests.

pub mod activity;
pub mod anchors;
pub mod audit;
pub mod auth;
mod binary;
mod bulk;
pub mod cluster;
pub mod consent;
mod error;
mod index;
mod ledger;
mod migrate;
mod prepared;
mod reindex;
mod schema;
mod search;
mod store;
mod tx;
mod verify;

pub use activity::LogActivity;
pub use anchors::{AnchorSession, LedgerSnapshot};
pub use audit::{AuditAppender, AuditRow};
pub use binary::{BinaryLocation, BinaryMeta, CHUNK_SIZE};
pub use bulk::NewResource;
pub use consent::{ConsentRuleRow, DocumentGround, EmergencyGrant, HeldRule, Referencing};
pub use error::StoreError;
pub use ledger::{LogHead, LoggedLeaf, Sequenced};
pub use migrate::{pending_migrations, run_migrations};
pub use search::{Found, SearchPage};
pub use store::{PgStore, PoolConfig, StartupLock};
pub use tx::{HistoryPage, Method, StoredVersion, Tx, WriteOutcome};
pub use verify::{
    LeafWithRow, LogSnapshot, PendingLeaf, RecordedCheckpoint, RowFacts, RowRef, UnloggedRow,
};
