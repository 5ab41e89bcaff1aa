//! The installations the HTTP server answers for (readiness, ops summary): a
//! fixed list for `serve`; for `run`, kept current by the Artifortress
//! controller from the resources it probes. Both sides use this module, so the
//! server needs nothing of the controllers and the controllers nothing of the
//! server's internals.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::api::artifortress::SloThresholds;
use crate::db::DatabaseUrl;
use crate::store::BackupStore;

/// One managed installation: its database and object storage.
pub struct Installation {
    pub name: String,
    /// Namespace whose RBAC decides who may read its ops summary.
    pub namespace: String,
    pub database_url: DatabaseUrl,
    pub pool: PgPool,
    pub object_store: Box<dyn BackupStore>,
    pub slo: SloThresholds,
}

impl Installation {
    fn same_config(&self, other: &Installation) -> bool {
        self.database_url.expose() == other.database_url.expose()
            && self.object_store.url() == other.object_store.url()
            && self.slo == other.slo
    }

    /// `namespace/name`, unique across namespaces.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// The installations the server answers for: fixed for `serve`; for `run`,
/// kept current by the Artifortress controller from the resources it probes.
#[derive(Default)]
pub struct Installations(std::sync::RwLock<Vec<Arc<Installation>>>);

impl Installations {
    pub fn new(list: Vec<Arc<Installation>>) -> Self {
        Installations(std::sync::RwLock::new(list))
    }

    pub fn all(&self) -> Vec<Arc<Installation>> {
        self.0.read().expect("not poisoned").clone()
    }

    /// Adds an installation or replaces the one with the same namespace and
    /// name when its configuration changed (an unchanged one keeps its pool).
    pub fn upsert(&self, installation: Installation) {
        let mut list = self.0.write().expect("not poisoned");
        let same = |i: &Arc<Installation>| i.namespace == installation.namespace && i.name == installation.name;
        match list.iter_mut().find(|i| same(i)) {
            Some(existing) if existing.same_config(&installation) => {}
            Some(existing) => *existing = Arc::new(installation),
            None => list.push(Arc::new(installation)),
        }
    }

    /// Whether `namespace/name` is registered with exactly this configuration
    /// (so a caller can skip building a store and a pool it would throw away).
    pub fn is_current(
        &self,
        namespace: &str,
        name: &str,
        database_url: &DatabaseUrl,
        store_url: &str,
        slo: &SloThresholds,
    ) -> bool {
        self.0.read().expect("not poisoned").iter().any(|i| {
            i.namespace == namespace
                && i.name == name
                && i.database_url.expose() == database_url.expose()
                && i.object_store.url() == store_url
                && i.slo == *slo
        })
    }

    pub fn retain(&self, keep: impl Fn(&Installation) -> bool) {
        self.0.write().expect("not poisoned").retain(|i| keep(i));
    }
}

/// A lazily connecting pool for an installation's database: the server starts
/// (and reports not ready) even while the database is down.
pub fn lazy_pool(url: &DatabaseUrl, check_timeout: Duration) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(check_timeout)
        .connect_lazy_with(url.connect_options())
}
