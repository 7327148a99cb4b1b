use diesel::PgConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::StoreError;

/// The SQL migrations from the repository's `migrations/` folder, compiled in.
const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Applies every pending migration and returns the names of those applied.
pub fn run_migrations(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

/// The migrations this build carries that the database has not applied
/// (empty when its schema is current; a database migrated by a newer build
/// is current for this one too: migrations only add).
pub fn pending_migrations(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    let pending = conn
        .pending_migrations(MIGRATIONS)
        .map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(pending.iter().map(|m| m.name().to_string()).collect())
}
