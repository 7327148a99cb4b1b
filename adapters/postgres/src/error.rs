use thiserror::Error;

/// Failures of the storage layer. Conflicts the caller must answer to the
/// client (stale versions, duplicates) are distinct variants; everything else
/// is infrastructure trouble.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("the resource is at version {current}, not {expected}")]
    VersionConflict { expected: i64, current: i64 },
    #[error("the resource does not exist, so version {expected} cannot match")]
    VersionConflictMissing { expected: i64 },
    #[error("the upload was aborted: {0}")]
    UploadAborted(String),
    #[error("the upload exceeds the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("that {0} is already taken")]
    Duplicate(String),
    #[error("database error: {0}")]
    Database(#[from] diesel::result::Error),
    #[error("cannot get a database connection: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("cannot connect to the database: {0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("'{0}' is not a paging cursor of this search")]
    InvalidCursor(String),
    /// A search the store cannot run (the audit trail's own limits).
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("storage invariant broken: {0}")]
    Internal(String),
    #[error("private PostgreSQL cluster: {0}")]
    Cluster(String),
}

impl StoreError {
    /// True when retrying the whole transaction may succeed (serialization
    /// failure or deadlock between concurrent writers).
    pub fn is_retryable(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        matches!(
            self,
            StoreError::Database(Error::DatabaseError(
                DatabaseErrorKind::SerializationFailure,
                _
            ))
        )
    }
}
