//! Blocking database work, queued fairly. Every blocking call to the store —
//! the FHIR service's and the authorization server's — runs through
//! [`Database::run`] or [`Database::run_read`]: a FIFO semaphore with one
//! permit per pooled connection stands in front of the blocking pool,
//! because r2d2 wakes waiters unfairly (with 64 clients reads kept their
//! throughput but some waited over a second).

use fhirledger_postgres::PgStore;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::ServiceError;

/// The server is stopping: no more work is queued.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the server is shutting down")]
pub struct Stopped;

impl From<Stopped> for ServiceError {
    fn from(_: Stopped) -> Self {
        ServiceError::internal("the server is shutting down")
    }
}

/// The store with its queues.
pub struct Database {
    store: PgStore,
    /// One permit per pooled connection.
    db_slots: Semaphore,
    /// Reads additionally queue here. Writes mostly wait for their commit to
    /// reach the disk and gain from many connections (group commit); reads
    /// only need CPU, and on two cores sixteen of them at once made some wait
    /// for hundreds of milliseconds.
    read_slots: Semaphore,
}

impl Database {
    pub fn new(store: PgStore, connections: usize, read_concurrency: usize) -> Database {
        Database {
            store,
            db_slots: Semaphore::new(connections),
            read_slots: Semaphore::new(read_concurrency),
        }
    }

    /// The store, for work that is already on a blocking thread holding a slot.
    pub fn store(&self) -> &PgStore {
        &self.store
    }

    /// Runs blocking work on the store once a connection slot is free.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&PgStore) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Stopped> + Send + 'static,
    {
        self.call(work).await?
    }

    /// Runs blocking work on the store once a connection slot is free and
    /// hands back whatever it returns; `Err` only when the server stops.
    pub async fn call<R, F>(&self, work: F) -> Result<R, Stopped>
    where
        F: FnOnce(&PgStore) -> R + Send + 'static,
        R: Send + 'static,
    {
        let _slot = self.slot().await?;
        // One connection for the whole work, however many calls it makes.
        let store = self.store.for_visit();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|_| Stopped)
    }

    /// Runs a blocking read once a read slot and a connection slot are free.
    pub async fn run_read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&PgStore) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<Stopped> + Send + 'static,
    {
        let _read = permit(&self.read_slots).await?;
        self.run(work).await
    }

    /// Waits for a connection slot, for work that is started by other means
    /// (a streamed upload runs its transaction while the body arrives).
    pub async fn slot(&self) -> Result<SemaphorePermit<'_>, Stopped> {
        permit(&self.db_slots).await
    }
}

/// A permit of `slots`; the semaphore only closes when the server stops.
async fn permit(slots: &Semaphore) -> Result<SemaphorePermit<'_>, Stopped> {
    slots.acquire().await.map_err(|_| Stopped)
}
