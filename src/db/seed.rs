//! Realistic, deterministic demo data at a chosen scale.
//!
//! Rows are generated inside PostgreSQL (`INSERT … SELECT generate_series`), so
//! seeding costs no network transfer and `large` (≈ 1 GB) takes minutes, not
//! hours. Values derive from the row number, so every run produces the same
//! data (relative to `now()`), which keeps benchmarks comparable.

use std::time::Instant;

use sqlx::PgPool;

use super::{DatabaseUrl, DbError};

/// How much data to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scale {
    /// A few MB in seconds: demos and tests.
    Small,
    /// About 100 MB.
    Medium,
    /// About 1 GB: benchmarks.
    Large,
    /// About 10 GB: the production-size benchmark (`make bench`).
    Xlarge,
}

/// Row counts per table for a scale.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub tenants: i64,
    pub repositories: i64,
    pub packages: i64,
    pub blobs: i64,
    pub package_versions: i64,
    pub outbox_events: i64,
    pub search_index_jobs: i64,
    pub gc_runs: i64,
    pub audit_log: i64,
    /// Audit rows spread evenly over this many days up to now.
    pub audit_span_days: i64,
}

impl Scale {
    pub fn sizes(self) -> Sizes {
        match self {
            Scale::Small => Sizes {
                tenants: 5,
                repositories: 40,
                packages: 1_000,
                blobs: 4_500,
                package_versions: 5_000,
                outbox_events: 5_000,
                search_index_jobs: 2_000,
                gc_runs: 48,
                audit_log: 20_000,
                audit_span_days: 2,
            },
            Scale::Medium => Sizes {
                tenants: 20,
                repositories: 400,
                packages: 20_000,
                blobs: 90_000,
                package_versions: 100_000,
                outbox_events: 50_000,
                search_index_jobs: 20_000,
                gc_runs: 500,
                audit_log: 200_000,
                audit_span_days: 30,
            },
            Scale::Large => Sizes {
                tenants: 50,
                repositories: 2_000,
                packages: 100_000,
                blobs: 450_000,
                package_versions: 500_000,
                outbox_events: 500_000,
                search_index_jobs: 200_000,
                gc_runs: 2_000,
                audit_log: 2_000_000,
                audit_span_days: 90,
            },
            Scale::Xlarge => Sizes {
                tenants: 200,
                repositories: 20_000,
                packages: 1_000_000,
                blobs: 4_500_000,
                package_versions: 5_000_000,
                outbox_events: 5_000_000,
                search_index_jobs: 2_000_000,
                gc_runs: 20_000,
                audit_log: 20_000_000,
                audit_span_days: 365,
            },
        }
    }
}

/// Every table the seed writes, parents first (the order `--reset` truncates in reverse).
pub const TABLES: &[&str] = &[
    "tenants",
    "repositories",
    "packages",
    "blobs",
    "package_versions",
    "api_tokens",
    "role_bindings",
    "outbox_events",
    "search_index_jobs",
    "gc_runs",
    "audit_log",
];

/// Rows per INSERT statement: big enough to be efficient, small enough to report progress.
const CHUNK: i64 = 100_000;

/// What a finished seed reports.
#[derive(Debug)]
pub struct SeedReport {
    pub seconds: f64,
    pub database_bytes: i64,
    pub rows: Vec<(String, i64)>,
}

/// Fills an empty, migrated database. With `reset`, all Artifortress tables are
/// truncated first; without it a database that already holds data is refused,
/// so a seed never silently mixes with real data.
pub async fn seed(pool: &PgPool, url: &DatabaseUrl, sizes: Sizes, reset: bool) -> Result<SeedReport, DbError> {
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
            .map_err(q("truncating Artifortress tables"))?;
    } else {
        let existing: i64 =
            sqlx::query_scalar("SELECT (SELECT count(*) FROM tenants) + (SELECT count(*) FROM audit_log)")
                .fetch_one(pool)
                .await
                .map_err(q("checking that the database is empty (is it migrated? run `migrate` first)"))?;
        if existing > 0 {
            return Err(DbError::NotEmpty { url: url.to_string(), rows: existing });
        }
    }

    // Two lanes on two connections: the catalogue chain (parents before children)
    // and the independent operations tables. Two cores, two lanes.
    let catalogue = async {
        insert(pool, url, "tenants", sizes.tenants, &tenants_sql()).await?;
        let tenant0 = min_id(pool, url, "tenants").await?;
        insert(pool, url, "repositories", sizes.repositories, &repositories_sql(tenant0, sizes.tenants)).await?;
        let repo0 = min_id(pool, url, "repositories").await?;
        insert(pool, url, "packages", sizes.packages, &packages_sql(repo0, sizes.repositories)).await?;
        insert(pool, url, "blobs", sizes.blobs, &blobs_sql()).await?;
        let package0 = min_id(pool, url, "packages").await?;
        let blob0 = min_id(pool, url, "blobs").await?;
        insert(
            pool,
            url,
            "package_versions",
            sizes.package_versions,
            &versions_sql(package0, sizes.packages, blob0, sizes.blobs),
        )
        .await?;
        insert(pool, url, "api_tokens", sizes.tenants * 5, &api_tokens_sql(tenant0, sizes.tenants)).await?;
        insert(pool, url, "role_bindings", sizes.tenants * 10, &role_bindings_sql(tenant0, sizes.tenants)).await?;
        Ok::<_, DbError>(package0)
    };
    let operations = async {
        insert(pool, url, "audit_log", sizes.audit_log, &audit_sql(sizes.audit_log, sizes.audit_span_days)).await?;
        insert(pool, url, "outbox_events", sizes.outbox_events, &outbox_sql(sizes.outbox_events, sizes.tenants))
            .await?;
        insert(pool, url, "gc_runs", sizes.gc_runs, &gc_runs_sql(sizes.gc_runs)).await?;
        Ok::<_, DbError>(())
    };
    let (package0, ()) = tokio::try_join!(catalogue, operations)?;
    insert(pool, url, "search_index_jobs", sizes.search_index_jobs, &search_jobs_sql(package0, sizes.packages)).await?;

    // VACUUM sets the visibility map, so the ops-summary counts run as index-only
    // scans right away, and ANALYZE gives the planner real statistics.
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

async fn min_id(pool: &PgPool, url: &DatabaseUrl, table: &str) -> Result<i64, DbError> {
    sqlx::query_scalar(&format!("SELECT coalesce(min(id), 1) FROM {table}"))
        .fetch_one(pool)
        .await
        .map_err(|source| DbError::Query { context: format!("reading ids of {table}"), url: url.to_string(), source })
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
            progress(&format!("{table:<18} {to:>9}/{total} rows ({:.1} s)", started.elapsed().as_secs_f64()));
        }
        from = to + 1;
    }
    Ok(())
}

// The generators below map the row number `i` to column values with cheap
// arithmetic (`i * prime % n`) so that the data looks varied yet is reproducible.

fn tenants_sql() -> String {
    "INSERT INTO tenants (slug, display_name, created_at)
     SELECT 'tenant-' || i, 'Tenant ' || i || ' Engineering', now() - make_interval(days => 400 - (i % 300)::int)
     FROM generate_series($1::bigint, $2::bigint) AS i"
        .to_string()
}

fn repositories_sql(tenant0: i64, tenants: i64) -> String {
    format!(
        "INSERT INTO repositories (tenant_id, name, format, visibility, created_at)
         SELECT {tenant0} + (i - 1) % {tenants},
                (ARRAY['libs','apps','images','tools','ml-models','mirror'])[1 + i % 6] || '-' || i,
                (ARRAY['npm','maven','pypi','oci','cargo','generic'])[1 + (i * 7) % 6],
                (ARRAY['private','private','internal','public'])[1 + (i * 13) % 4],
                now() - make_interval(days => 380 - (i % 300)::int)
         FROM generate_series($1::bigint, $2::bigint) AS i"
    )
}

fn packages_sql(repo0: i64, repositories: i64) -> String {
    format!(
        "INSERT INTO packages (repository_id, name, description, created_at, updated_at)
         SELECT {repo0} + (i - 1) % {repositories},
                (ARRAY['core','client','server','utils','proto','sdk','cli','plugin'])[1 + i % 8] || '-' || i,
                'Internal ' || (ARRAY['library','service','toolkit','model','bundle'])[1 + i % 5]
                  || ' #' || i || ' maintained by team ' || (i % 97),
                now() - make_interval(days => 360 - (i % 360)::int),
                now() - make_interval(hours => (i % 2000)::int)
         FROM generate_series($1::bigint, $2::bigint) AS i"
    )
}

fn blobs_sql() -> String {
    // The content of blob i is known (engine::blobs::seed_content), so that
    // `seed --blob-store` can write objects whose SHA-256 is the digest and
    // whose size is size_bytes.
    "INSERT INTO blobs (digest, size_bytes, storage_key, media_type, created_at)
     SELECT 'sha256:' || h, length(c),
            'blobs/sha256/' || substr(h, 1, 2) || '/' || h,
            (ARRAY['application/gzip','application/java-archive','application/vnd.oci.image.layer.v1.tar+gzip','application/zip'])[1 + i % 4],
            now() - make_interval(mins => (i % 500000)::int)
     FROM generate_series($1::bigint, $2::bigint) AS i,
          LATERAL convert_to(repeat('artifortress seed blob ' || i || E'\n', 1 + ((i * 7919) % 40)::int), 'UTF8') AS c,
          LATERAL encode(sha256(c), 'hex') AS h"
        .to_string()
}

fn versions_sql(package0: i64, packages: i64, blob0: i64, blobs: i64) -> String {
    // Row i belongs to package (i-1) % packages; k = (i-1) / packages is that
    // package's k-th version, so (package_id, version) is unique.
    format!(
        "INSERT INTO package_versions (package_id, version, blob_id, metadata, yanked, published_at)
         SELECT {package0} + (i - 1) % {packages},
                ((i - 1) / {packages} + 1) || '.' || (i % 10) || '.' || (i % 7),
                {blob0} + (i - 1) % {blobs},
                jsonb_build_object(
                  'license', (ARRAY['Apache-2.0','MIT','BSD-3-Clause','Proprietary'])[1 + i % 4],
                  'dependencies', (i % 23) + 1,
                  'builtBy', 'ci-runner-' || (i % 40),
                  'sourceCommit', md5(i::text)),
                i % 503 = 0,
                now() - make_interval(mins => (i % 500000)::int)
         FROM generate_series($1::bigint, $2::bigint) AS i"
    )
}

fn api_tokens_sql(tenant0: i64, tenants: i64) -> String {
    format!(
        "INSERT INTO api_tokens (tenant_id, name, token_sha256, created_at, expires_at, last_used_at, revoked_at)
         SELECT {tenant0} + (i - 1) % {tenants}, 'ci-token-' || i,
                encode(sha256(convert_to('token-' || i, 'UTF8')), 'hex'),
                now() - interval '90 days', now() + make_interval(days => (i % 365)::int),
                now() - make_interval(mins => (i * 37 % 10000)::int),
                CASE WHEN i % 9 = 0 THEN now() - interval '3 days' END
         FROM generate_series($1::bigint, $2::bigint) AS i"
    )
}

fn role_bindings_sql(tenant0: i64, tenants: i64) -> String {
    format!(
        "INSERT INTO role_bindings (tenant_id, subject, role)
         SELECT {tenant0} + (i - 1) % {tenants}, 'user-' || i,
                (ARRAY['admin','maintainer','reader','reader'])[1 + i % 4]
         FROM generate_series($1::bigint, $2::bigint) AS i"
    )
}

fn outbox_sql(total: i64, tenants: i64) -> String {
    // 0.4 % pending (a live backlog of the last four minutes; a quarter of it
    // waiting for a retry, so not yet available), 0.1 % dead, the rest published.
    format!(
        "INSERT INTO outbox_events (event_type, payload, status, attempts, available_at, created_at, published_at)
         SELECT event_type, payload, status, attempts,
                CASE WHEN status = 'pending' AND i % 1000 = 0 THEN now() + interval '10 minutes' ELSE created_at END,
                created_at,
                CASE WHEN status = 'published' THEN created_at + make_interval(secs => 1 + i % 30) END
         FROM (
           SELECT i,
                  (ARRAY['package.published','package.yanked','blob.stored','repository.created','token.revoked'])[1 + i % 5] AS event_type,
                  jsonb_build_object('tenant', 'tenant-' || (1 + i % {tenants}), 'packageVersionId', i,
                                     'digest', 'sha256:' || md5(i::text) || md5((i + 1)::text)) AS payload,
                  CASE WHEN i % 250 = 0 THEN 'pending' WHEN i % 1000 = 1 THEN 'dead' ELSE 'published' END AS status,
                  CASE WHEN i % 250 = 0 THEN i % 4 WHEN i % 1000 = 1 THEN 10 ELSE 1 END AS attempts,
                  CASE WHEN i % 250 = 0 THEN now() - make_interval(secs => i % 240)
                       ELSE now() - make_interval(secs => ({total} - i) * 5 + 300) END AS created_at
           FROM generate_series($1::bigint, $2::bigint) AS i
         ) AS e"
    )
}

fn search_jobs_sql(package0: i64, packages: i64) -> String {
    format!(
        "INSERT INTO search_index_jobs (package_id, status, attempts, last_error, created_at, updated_at)
         SELECT {package0} + (i - 1) % {packages}, status,
                CASE status WHEN 'failed' THEN 5 WHEN 'done' THEN 1 ELSE 0 END,
                CASE WHEN status = 'failed' THEN 'search backend rejected batch: 429 Too Many Requests' END,
                now() - make_interval(mins => (i % 100000)::int),
                now() - make_interval(mins => (i % 100000)::int) + interval '2 seconds'
         FROM generate_series($1::bigint, $2::bigint) AS i,
              LATERAL (SELECT CASE WHEN i % 2000 = 0 THEN 'failed' WHEN i % 500 = 1 THEN 'pending'
                                   WHEN i % 500 = 2 THEN 'running' ELSE 'done' END AS status) AS s"
    )
}

fn gc_runs_sql(total: i64) -> String {
    // Hourly runs; the newest is still running (incomplete).
    format!(
        "INSERT INTO gc_runs (started_at, completed_at, blobs_scanned, blobs_deleted, bytes_reclaimed)
         SELECT now() - make_interval(hours => ({total} - i)::int) - interval '10 minutes',
                CASE WHEN i = {total} THEN NULL
                     ELSE now() - make_interval(hours => ({total} - i)::int) - interval '10 minutes'
                          + make_interval(secs => 30 + i % 300) END,
                10000 + i * 13 % 5000, i * 7 % 40, (i * 7 % 40) * 3145728
         FROM generate_series($1::bigint, $2::bigint) AS i"
    )
}

fn audit_sql(total: i64, span_days: i64) -> String {
    // Spread evenly over span_days up to now; one in a thousand is a policy timeout.
    format!(
        "INSERT INTO audit_log (occurred_at, actor, action, resource, outcome, details)
         SELECT now() - make_interval(secs => ({total} - i)::float8 / {total} * {span_days} * 86400),
                CASE WHEN i % 17 = 0 THEN 'ci-token-' || (i % 250) ELSE 'user-' || (i % 5000) END,
                action,
                'tenant-' || (1 + i % 50) || '/repo-' || (i % 2000) || '/pkg-' || (i % 100000),
                CASE WHEN action = 'policy.timeout' THEN 'error' WHEN i % 50 = 0 THEN 'denied' ELSE 'allowed' END,
                jsonb_build_object('requestId', md5(i::text), 'clientIp', '10.' || (i % 250) || '.' || (i * 7 % 250) || '.' || (i * 13 % 250),
                                   'userAgent', (ARRAY['npm/10.8','maven/3.9','pip/24.0','containerd/1.7','cargo/1.95'])[1 + i % 5])
         FROM generate_series($1::bigint, $2::bigint) AS i,
              LATERAL (SELECT CASE WHEN i % 1000 = 0 THEN 'policy.timeout'
                                   ELSE (ARRAY['package.download','package.download','package.download','package.publish',
                                               'policy.evaluate','token.use','repository.read'])[1 + i % 7] END AS action) AS a"
    )
}
