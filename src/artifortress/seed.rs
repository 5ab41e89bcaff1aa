//! Demo, test and benchmark data: the upstream schema filled like a live
//! installation — tenants (one, `default`, as upstream deploys it, or several),
//! repositories (some keys with `/`), packages, versions in every state with
//! their artifact entries and manifests, content-addressed blobs shared between
//! versions, upload sessions in every state (committed, duplicate, aborted, in
//! flight), tombstones and GC runs, identity tables (tokens, some revoked;
//! bindings; legal holds), the search read model, and the backlogs the ops
//! summary counts, with realistic ages.
//!
//! Rows are generated inside PostgreSQL (`INSERT … SELECT generate_series`), so
//! seeding costs no network transfer; every value derives from the row number
//! (ids are `md5('<kind>:<n>')` as uuids), so every run produces the same data
//! relative to `now()`, which keeps benchmarks comparable.

use std::time::Instant;

use sqlx::PgPool;

use crate::db::{DatabaseUrl, DbError};

mod generators;
use generators::Generators;

/// How much data to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scale {
    /// A few MB in seconds: demos and tests.
    Small,
    /// About 150 MB.
    Medium,
    /// About 1.5 GB, millions of audit rows: benchmarks.
    Large,
    /// About 12 GB: the production-size benchmark (`make bench`).
    Xlarge,
}

/// Row counts of a scale (the other tables follow from these).
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub tenants: i64,
    pub repos: i64,
    pub packages: i64,
    /// Package versions; blobs, entries, manifests, uploads and search rows follow from it.
    pub versions: i64,
    pub outbox_events: i64,
    pub audit_log: i64,
    /// Audit rows spread evenly over this many days up to now.
    pub audit_span_days: i64,
    pub gc_runs: i64,
    pub users: i64,
    pub tokens: i64,
}

impl Scale {
    pub fn sizes(self, tenants: i64) -> Sizes {
        let (repos, packages, versions, outbox_events, audit_log, audit_span_days, gc_runs, users, tokens) = match self
        {
            Scale::Small => (12, 400, 2_000, 5_000, 20_000, 2, 30, 50, 100),
            Scale::Medium => (60, 8_000, 40_000, 100_000, 400_000, 30, 200, 500, 1_000),
            Scale::Large => (200, 40_000, 160_000, 500_000, 3_000_000, 90, 1_000, 2_000, 5_000),
            Scale::Xlarge => (1_000, 400_000, 1_600_000, 5_000_000, 30_000_000, 365, 5_000, 10_000, 50_000),
        };
        Sizes {
            tenants: tenants.max(1),
            repos: repos.max(tenants),
            packages,
            versions,
            outbox_events,
            audit_log,
            audit_span_days,
            gc_runs,
            users,
            tokens,
        }
    }
}

/// How the blob rows of a seed are numbered: `1..=entry_blobs` are the content
/// of artifact entries (each shared by two entries of different versions),
/// then the manifests' blobs, then blobs only a committed upload references,
/// then blobs nothing references (what upstream's GC may delete).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLayout {
    pub entry_blobs: i64,
    pub manifest_blobs: i64,
    pub committed_only: i64,
    pub unreferenced: i64,
}

impl BlobLayout {
    pub fn of(sizes: &Sizes) -> Self {
        let v = sizes.versions;
        BlobLayout {
            entry_blobs: v,
            manifest_blobs: v / 4,
            committed_only: (v / 100).max(1),
            unreferenced: (v / 50).max(1),
        }
    }

    pub fn total(&self) -> i64 {
        self.entry_blobs + self.manifest_blobs + self.committed_only + self.unreferenced
    }

    /// Blobs a committed upload session references (all but the unreferenced).
    pub fn committed(&self) -> i64 {
        self.entry_blobs + self.manifest_blobs + self.committed_only
    }
}

/// Every table the seed writes, parents first (`--reset` truncates them all).
pub const TABLES: &[&str] = &[
    "tenants",
    "repos",
    "packages",
    "package_versions",
    "blobs",
    "artifact_entries",
    "manifests",
    "upload_sessions",
    "tombstones",
    "users",
    "personal_access_tokens",
    "token_revocations",
    "role_bindings",
    "tenant_role_bindings",
    "policy_evaluations",
    "quarantine_items",
    "artifact_protections",
    "tenant_governance_policies",
    "repo_governance_policies",
    "governance_approvals",
    "pat_issuance_policies",
    "tenant_admission_policies",
    "tenant_search_controls",
    "search_index_jobs",
    "search_documents",
    "gc_runs",
    "gc_marks",
    "outbox_events",
    "audit_log",
];

/// Rows per INSERT statement: big enough to be efficient, small enough to report progress.
const CHUNK: i64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(
        "refusing to seed {url}: it already holds data ({rows} rows in tenants and audit_log); pass --reset to truncate every Artifortress table first"
    )]
    NotEmpty { url: String, rows: i64 },
    #[error("{0}")]
    Db(#[from] DbError),
}

/// What a finished seed reports.
#[derive(Debug)]
pub struct SeedReport {
    pub seconds: f64,
    pub database_bytes: i64,
    pub rows: Vec<(String, i64)>,
}

/// Fills an empty database at the model's level. With `reset`, every table is
/// truncated first; without it a database that already holds data is refused,
/// so a seed never silently mixes with real data.
pub async fn seed(pool: &PgPool, url: &DatabaseUrl, sizes: Sizes, reset: bool) -> Result<SeedReport, SeedError> {
    let q = |context: &str| {
        let context = context.to_string();
        let url = url.to_string();
        move |source| DbError::Query { context, url, source }
    };
    let started = Instant::now();
    if reset {
        sqlx::query(&format!("TRUNCATE {} RESTART IDENTITY CASCADE", TABLES.join(", ")))
            .execute(pool)
            .await
            .map_err(q("truncating the Artifortress tables"))?;
    } else {
        let existing: i64 =
            sqlx::query_scalar("SELECT (SELECT count(*) FROM tenants) + (SELECT count(*) FROM audit_log)")
                .fetch_one(pool)
                .await
                .map_err(q("checking that the database is empty (is it migrated? run `migrate` first)"))?;
        if existing > 0 {
            return Err(SeedError::NotEmpty { url: url.to_string(), rows: existing });
        }
    }
    let g = Generators { s: sizes, b: BlobLayout::of(&sizes) };
    // Two lanes on two connections: the catalogue (parents before children)
    // and the operations tables, which need only the tenants.
    insert(pool, url, "tenants", sizes.tenants, &g.tenants()).await?;
    let catalogue = async {
        insert(pool, url, "repos", sizes.repos, &g.repos()).await?;
        insert(pool, url, "packages", sizes.packages, &g.packages()).await?;
        insert(pool, url, "package_versions", sizes.versions, &g.versions()).await?;
        insert(pool, url, "blobs", g.b.total(), &g.blobs()).await?;
        insert(pool, url, "artifact_entries", 2 * sizes.versions, &g.entries()).await?;
        insert(pool, url, "manifests", sizes.versions, &g.manifests()).await?;
        insert(pool, url, "upload_sessions", g.b.committed(), &g.committed_uploads()).await?;
        insert(pool, url, "upload_sessions", g.b.entry_blobs, &g.duplicate_uploads()).await?;
        insert(pool, url, "upload_sessions", g.open_uploads(), &g.other_uploads()).await?;
        insert(pool, url, "tombstones", sizes.versions, &g.tombstones()).await?;
        insert(pool, url, "search_index_jobs", sizes.versions, &g.search_jobs()).await?;
        insert(pool, url, "search_documents", sizes.versions, &g.search_documents()).await?;
        insert(pool, url, "policy_evaluations", sizes.versions / 10, &g.policy_evaluations()).await?;
        insert(pool, url, "quarantine_items", (sizes.versions / 500).max(1), &g.quarantine()).await?;
        insert(pool, url, "artifact_protections", (sizes.versions / 400).max(2), &g.protections()).await?;
        insert(pool, url, "role_bindings", sizes.repos * 3, &g.role_bindings()).await?;
        insert(pool, url, "repo_governance_policies", (sizes.repos / 10).max(1), &g.repo_governance()).await?;
        insert(pool, url, "governance_approvals", (sizes.versions / 1000).max(1), &g.approvals()).await?;
        insert(pool, url, "gc_runs", sizes.gc_runs, &g.gc_runs()).await?;
        insert(pool, url, "gc_marks", g.b.total().min(1000), &g.gc_marks()).await?;
        Ok::<_, DbError>(())
    };
    let operations = async {
        insert(pool, url, "audit_log", sizes.audit_log, &g.audit()).await?;
        insert(pool, url, "outbox_events", sizes.outbox_events, &g.outbox()).await?;
        insert(pool, url, "users", sizes.users, &g.users()).await?;
        insert(pool, url, "personal_access_tokens", sizes.tokens, &g.tokens()).await?;
        insert(pool, url, "token_revocations", sizes.tokens, &g.revocations()).await?;
        insert(pool, url, "tenant_role_bindings", sizes.tenants * 3, &g.tenant_role_bindings()).await?;
        for (table, sql) in g.tenant_policies() {
            insert(pool, url, table, sizes.tenants, &sql).await?;
        }
        Ok::<_, DbError>(())
    };
    tokio::try_join!(catalogue, operations)?;

    // VACUUM sets the visibility map, so the ops-summary counts run as
    // index-only scans at once, and ANALYZE gives the planner real statistics.
    progress(&format!("vacuum analyze ({:.1} s)", started.elapsed().as_secs_f64()));
    sqlx::query(&format!("VACUUM (ANALYZE) {}", TABLES.join(", "))).execute(pool).await.map_err(q("vacuum analyze"))?;
    let database_bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(pool)
        .await
        .map_err(q("reading the database size"))?;
    let mut rows = Vec::new();
    for table in TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(pool)
            .await
            .map_err(q(&format!("counting {table}")))?;
        rows.push((table.to_string(), n));
    }
    Ok(SeedReport { seconds: started.elapsed().as_secs_f64(), database_bytes, rows })
}

fn progress(msg: &str) {
    eprintln!("seed: {msg}");
}

/// Runs `sql` (an INSERT … SELECT over `generate_series($1, $2) AS i`) for rows
/// 1..=total in chunks, printing progress after each chunk.
async fn insert(pool: &PgPool, url: &DatabaseUrl, table: &str, total: i64, sql: &str) -> Result<(), DbError> {
    let started = Instant::now();
    let mut from = 1;
    while from <= total {
        let to = (from + CHUNK - 1).min(total);
        sqlx::query(sql).bind(from).bind(to).execute(pool).await.map_err(|source| DbError::Query {
            context: format!("seeding {table} rows {from}..{to}"),
            url: url.to_string(),
            source,
        })?;
        if total > CHUNK || to == total {
            progress(&format!("{table:<26} {to:>9}/{total} rows ({:.1} s)", started.elapsed().as_secs_f64()));
        }
        from = to + 1;
    }
    Ok(())
}

/// The content the seed gives blob `j`: its SHA-256 is the row's digest and
/// its length the row's `length_bytes` (the SQL below computes the same bytes).
pub fn blob_content(j: i64) -> Vec<u8> {
    let repeats = 1 + (j * 7919).rem_euclid(40) as usize;
    format!("artifortress seed blob {j}\n").repeat(repeats).into_bytes()
}

/// The content of a leftover object (an aborted or duplicate upload's).
pub fn leftover_content(key: &str) -> Vec<u8> {
    format!("artifortress seed leftover {key}\n").repeat(3).into_bytes()
}

/// Every object a seed of `sizes` stores in the blob bucket, as rows (key,
/// blob number): each blob row's object (its content is [`blob_content`] of
/// the number), and without a number (content [`leftover_content`]) the
/// objects duplicate uploads and half the aborted ones left behind, and the
/// complete object of each upload waiting for its commit.
pub fn objects_sql(sizes: &Sizes) -> String {
    let g = Generators { s: *sizes, b: BlobLayout::of(sizes) };
    let r = format!("(((i - 1) % {}) + 1)", sizes.repos);
    format!(
        "SELECT b.storage_key, i FROM generate_series(1::bigint, {blobs}) AS i, {lateral}
         UNION ALL
         SELECT regexp_replace(b.storage_key, '[0-9a-f]{{32}}$', md5('duplicate:' || i)), NULL::bigint
         FROM generate_series(1::bigint, {entry_blobs}) AS i, {lateral} WHERE i % 97 = 0
         UNION ALL
         SELECT 'staging/' || md5('tenant:' || {t}) || '/' || ({key}) || '/' || md5('open-upload:' || i), NULL::bigint
         FROM generate_series(1::bigint, {open}) AS i WHERE i % 8 = 7 OR (i % 8 < 5 AND i % 2 = 0)",
        blobs = g.b.total(),
        entry_blobs = g.b.entry_blobs,
        lateral = g.blob_lateral("i"),
        open = g.open_uploads(),
        t = g.tenant_of_repo(&r),
        key = Generators::repo_key(&r),
    )
}

#[cfg(test)]
mod tests;
