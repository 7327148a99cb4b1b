//! At start-up: is the search index written by this version's indexing
//! rules? A generation recorded by other rules means a rebuild (and says
//! so); no generation at all means a database that was never indexed — a
//! new one, where the generation is only recorded, or one older than the
//! recorded generations, whose resources are indexed now.

use anyhow::Context;
use fhir_profiles::search::registry::index_generation;
use fhir_profiles::search::{extract, IndexRows};
use fhirledger_postgres::PgStore;

/// Brings the search index up to date; `rebuild` rebuilds it after a change
/// of rules (`fhirledger reindex`'s work, which logs its progress).
pub(crate) fn ensure_current(
    store: &PgStore,
    fhir_base: &str,
    rebuild: impl FnOnce(&PgStore, &str) -> anyhow::Result<u64>,
) -> anyhow::Result<()> {
    let generation = index_generation();
    match store.index_generation()? {
        Some(recorded) if recorded == generation => Ok(()),
        Some(recorded) => {
            tracing::info!(%recorded, %generation, "the search index was written by other rules; rebuilding it");
            rebuild(store, fhir_base).map(|_| ())
        }
        None => {
            // Resources written meanwhile index themselves; any already
            // there are indexed here, under the generation recorded with them.
            let indexed = store
                .reindex(&generation, |_, content| rows(content, fhir_base), |_| {})
                .context(
                    "indexing the resources of a database without a search index generation",
                )?;
            if indexed == 0 {
                tracing::debug!(%generation, "new database: search index generation recorded");
            } else {
                tracing::info!(
                    indexed,
                    %generation,
                    "the database had no search index generation; its resources are now indexed"
                );
            }
            Ok(())
        }
    }
}

/// The index rows of a stored resource.
fn rows(content: &str, fhir_base: &str) -> IndexRows {
    match serde_json::from_str(content) {
        Ok(resource) => extract(&resource, fhir_base),
        Err(e) => {
            tracing::error!(error = %e, "a stored resource is not JSON; it is not indexed");
            IndexRows::default()
        }
    }
}
