//! What the store's test binaries share: one private PostgreSQL cluster per binary.

use std::sync::OnceLock;

use fhirledger_postgres::cluster::disposable_store;
use fhirledger_postgres::PgStore;

/// The store of this test binary, on a cluster of its own; stopped and removed when the
/// binary exits.
pub fn store() -> &'static PgStore {
    &cluster().1
}

/// The URL of this test binary's database, for statements the store does not offer.
#[allow(dead_code)]
pub fn database_url() -> &'static str {
    &cluster().0
}

fn cluster() -> &'static (String, PgStore) {
    static STORE: OnceLock<(String, PgStore)> = OnceLock::new();
    STORE.get_or_init(|| disposable_store("store-test").expect("a store on a private cluster"))
}
