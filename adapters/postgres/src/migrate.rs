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
