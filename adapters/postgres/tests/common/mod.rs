//! What the store's test binaries share: one private PostgreSQL cluster per binary.

use std::sync::OnceLock;

use fhirledger_postgres::cluster::{ClusterConfig, PrivateCluster};
use fhirledger_postgres::{PgStore, PoolConfig};

/// The store of this test binary, on a cluster in a temp dir the postgres account can
/// reach; stopped and removed when the binary exits.
pub fn store() -> &'static PgStore {
    static STORE: OnceLock<PgStore> = OnceLock::new();
    STORE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("fhirledger-store-test")
            .tempdir_in("/tmp")
            .expect("a temp dir");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("temp dir permissions");
        let cluster = PrivateCluster::start(&ClusterConfig::new(dir.path().join("db")))
            .expect("cluster starts")
            .stop_at_exit(Some(dir.keep()));
        let store =
            PgStore::connect(&cluster.database_url(), &PoolConfig::default()).expect("pool");
        store.migrate().expect("migrations apply");
        store
    })
}
