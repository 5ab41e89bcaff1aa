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

/// SQL for the seed's tables; `i` is the row number of `generate_series($1, $2)`.
struct Generators {
    s: Sizes,
    b: BlobLayout,
}

/// `md5('<kind>:' || n)` as a uuid: the deterministic id of row n of a kind.
fn id(kind: &str, n: &str) -> String {
    format!("md5('{kind}:' || ({n}))::uuid")
}

impl Generators {
    fn tenant_of_repo(&self, r: &str) -> String {
        format!("((({r}) - 1) % {} + 1)", self.s.tenants)
    }

    fn repo_of_package(&self, p: &str) -> String {
        format!("((({p}) - 1) % {} + 1)", self.s.repos)
    }

    fn package_of_version(&self, v: &str) -> String {
        format!("((({v}) - 1) % {} + 1)", self.s.packages)
    }

    fn repo_of_version(&self, v: &str) -> String {
        self.repo_of_package(&self.package_of_version(v))
    }

    /// Repository keys: some with a `/`, as upstream allows.
    fn repo_key(r: &str) -> String {
        format!(
            "CASE WHEN ({r}) % 7 = 0 THEN 'team-' || (({r}) % 13) || '/generic-' || ({r})
                  ELSE (ARRAY['libs-release','libs-snapshot','npm-local','docker-remote','maven-central','pypi-virtual'])[1 + ({r}) % 6] || '-' || ({r}) END"
        )
    }

    /// Blob j's bytes, digest and key, as SQL (see [`blob_content`]).
    fn blob_lateral(&self, j: &str) -> String {
        let r = format!("((({j}) - 1) % {} + 1)", self.s.repos);
        let t = self.tenant_of_repo(&r);
        format!(
            "LATERAL (SELECT convert_to(repeat('artifortress seed blob ' || ({j}) || E'\\n', 1 + ((({j}) * 7919) % 40)::int), 'UTF8') AS c) AS bc,
             LATERAL (SELECT encode(sha256(bc.c), 'hex') AS digest, length(bc.c)::bigint AS length,
                             'staging/' || md5('tenant:' || {t}) || '/' || ({key}) || '/' || md5('upload:' || ({j})) AS storage_key,
                             {r} AS repo, {t} AS tenant) AS b",
            key = Self::repo_key(&r)
        )
    }

    /// The state of version v: every 20th tombstoned, every 20th + 1 a draft.
    fn state(v: &str) -> String {
        format!("CASE WHEN ({v}) % 20 = 0 THEN 'tombstoned' WHEN ({v}) % 20 = 1 THEN 'draft' ELSE 'published' END")
    }

    fn tenants(&self) -> String {
        "INSERT INTO tenants (tenant_id, slug, name, created_at)
         SELECT md5('tenant:' || i)::uuid, CASE WHEN i = 1 THEN 'default' ELSE 'tenant-' || i END,
                CASE WHEN i = 1 THEN 'Default' ELSE 'Tenant ' || i END, now() - make_interval(days => 400 - i::int % 300)
         FROM generate_series($1::bigint, $2::bigint) AS i"
            .to_string()
    }

    fn repos(&self) -> String {
        format!(
            "INSERT INTO repos (repo_id, tenant_id, repo_key, repo_type, config, created_at)
             SELECT {id}, md5('tenant:' || {t})::uuid, {key},
                    (ARRAY['local','local','remote','virtual'])[1 + i % 4],
                    jsonb_build_object('description', 'repository ' || i, 'retentionDays', 30 + i % 60),
                    now() - make_interval(days => 380 - (i % 300)::int)
             FROM generate_series($1::bigint, $2::bigint) AS i",
            id = id("repo", "i"),
            t = self.tenant_of_repo("i"),
            key = Self::repo_key("i")
        )
    }

    fn packages(&self) -> String {
        let r = self.repo_of_package("i");
        format!(
            "INSERT INTO packages (package_id, tenant_id, repo_id, package_type, namespace, name, created_at)
             SELECT {id}, md5('tenant:' || {t})::uuid, md5('repo:' || {r})::uuid,
                    (ARRAY['npm','maven','pypi','oci','nuget','generic'])[1 + i % 6],
                    CASE WHEN i % 3 = 0 THEN NULL ELSE 'org' || (i % 50) END,
                    (ARRAY['core','client','server','utils','proto','sdk','cli','plugin'])[1 + i % 8] || '-' || i,
                    now() - make_interval(days => 360 - (i % 360)::int)
             FROM generate_series($1::bigint, $2::bigint) AS i",
            id = id("package", "i"),
            t = self.tenant_of_repo(&r),
        )
    }

    fn versions(&self) -> String {
        let p = self.package_of_version("i");
        let r = self.repo_of_version("i");
        format!(
            "INSERT INTO package_versions (version_id, tenant_id, repo_id, package_id, version, state, published_at,
                                           created_by_subject, created_at, tombstoned_at, tombstone_reason)
             SELECT {id}, md5('tenant:' || {t})::uuid, md5('repo:' || {r})::uuid, md5('package:' || {p})::uuid,
                    ((i - 1) / {packages} + 1) || '.' || (i % 10) || '.' || (i % 7), s.state,
                    CASE WHEN s.state <> 'draft' THEN s.created + interval '5 minutes' END,
                    'user-' || (i % 500), s.created,
                    CASE WHEN s.state = 'tombstoned' THEN now() - make_interval(days => ((i * 13) % 60)::int) END,
                    CASE WHEN s.state = 'tombstoned' THEN 'superseded by a fixed release' END
             FROM generate_series($1::bigint, $2::bigint) AS i,
                  LATERAL (SELECT {state} AS state, now() - make_interval(days => 70 + (i % 300)::int, mins => (i % 1440)::int) AS created) AS s",
            id = id("version", "i"),
            t = self.tenant_of_repo(&r),
            packages = self.s.packages,
            state = Self::state("i"),
        )
    }

    fn blobs(&self) -> String {
        format!(
            "INSERT INTO blobs (digest, length_bytes, storage_key, object_etag, created_at)
             SELECT b.digest, b.length, b.storage_key, md5(b.digest), now() - make_interval(days => 80, mins => (i % 100000)::int)
             FROM generate_series($1::bigint, $2::bigint) AS i, {lateral}",
            lateral = self.blob_lateral("i")
        )
    }

    fn entries(&self) -> String {
        // Entry i belongs to version (i + 1) / 2 and holds blob ((i - 1) % V) + 1:
        // every entry blob is shared by two versions (content-addressed dedupe).
        format!(
            "INSERT INTO artifact_entries (version_id, relative_path, blob_digest, checksum_sha1, checksum_sha256, size_bytes)
             SELECT md5('version:' || ((i + 1) / 2))::uuid,
                    'files/' || ((i + 1) / 2) || CASE WHEN i % 2 = 1 THEN '/artifact.tgz' ELSE '/metadata.json' END,
                    b.digest, substr(md5(b.digest), 1, 40), b.digest, b.length
             FROM generate_series($1::bigint, $2::bigint) AS i, {lateral}",
            lateral = self.blob_lateral(&format!("((i - 1) % {}) + 1", self.b.entry_blobs))
        )
    }

    fn manifests(&self) -> String {
        // Every other non-draft version has a manifest; every fourth version's
        // manifest is a blob of its own (blob V + v / 4).
        let r = self.repo_of_version("v.i");
        format!(
            "INSERT INTO manifests (version_id, tenant_id, repo_id, package_type, manifest_blob_digest, manifest_json,
                                    created_by_subject, updated_by_subject, created_at, updated_at)
             SELECT md5('version:' || v.i)::uuid, md5('tenant:' || {t})::uuid, md5('repo:' || {r})::uuid,
                    (ARRAY['npm','maven','pypi','oci','nuget','generic'])[1 + {p} % 6],
                    CASE WHEN v.i % 4 = 0 THEN b.digest END,
                    jsonb_build_object('name', 'pkg-' || {p}, 'version', v.i, 'license', (ARRAY['Apache-2.0','MIT','BSD-3-Clause'])[1 + v.i % 3],
                                       'dependencies', jsonb_build_array('dep-' || (v.i % 97), 'dep-' || (v.i % 89))),
                    'user-' || (v.i % 500), 'user-' || (v.i % 500), now() - interval '60 days', now() - interval '30 days'
             FROM generate_series($1::bigint, $2::bigint) AS v(i), {lateral}
             WHERE v.i % 2 = 0 AND v.i % 20 <> 1",
            t = self.tenant_of_repo(&r),
            p = self.package_of_version("v.i"),
            lateral = self.blob_lateral(&format!("{} + v.i / 4", self.b.entry_blobs))
        )
    }

    fn committed_uploads(&self) -> String {
        format!(
            "INSERT INTO upload_sessions (upload_id, tenant_id, repo_id, expected_digest, expected_length, state,
                                          object_staging_key, storage_upload_id, committed_blob_digest, created_by_subject,
                                          expires_at, created_at, updated_at, committed_at)
             SELECT md5('upload:' || i)::uuid, md5('tenant:' || b.tenant)::uuid, md5('repo:' || b.repo)::uuid,
                    b.digest, b.length, 'committed', b.storage_key, md5('multipart:' || i), b.digest, 'user-' || (i % 500),
                    c.at + interval '1 day', c.at, c.at + interval '2 minutes', c.at + interval '2 minutes'
             FROM generate_series($1::bigint, $2::bigint) AS i, {lateral},
                  LATERAL (SELECT now() - make_interval(days => 80, mins => (i % 100000)::int) AS at) AS c",
            lateral = self.blob_lateral("i")
        )
    }

    /// A second, duplicate upload of every 97th entry blob: committed to the
    /// existing blob, its own object left under its staging key (upstream keeps it).
    fn duplicate_uploads(&self) -> String {
        format!(
            "INSERT INTO upload_sessions (upload_id, tenant_id, repo_id, expected_digest, expected_length, state,
                                          object_staging_key, committed_blob_digest, created_by_subject,
                                          expires_at, created_at, updated_at, committed_at)
             SELECT md5('duplicate:' || i)::uuid, md5('tenant:' || b.tenant)::uuid, md5('repo:' || b.repo)::uuid,
                    b.digest, b.length, 'committed',
                    regexp_replace(b.storage_key, '[0-9a-f]{{32}}$', md5('duplicate:' || i)), b.digest, 'user-' || (i % 500),
                    now() - interval '9 days', now() - interval '10 days', now() - interval '10 days', now() - interval '10 days'
             FROM generate_series($1::bigint, $2::bigint) AS i, {lateral}
             WHERE i % 97 = 0",
            lateral = self.blob_lateral("i")
        )
    }

    /// Sessions that are not committed: per 8 rows 5 aborted, one initiated,
    /// one uploading parts, one waiting for its commit (its object complete).
    fn open_uploads(&self) -> i64 {
        (self.s.versions / 100).max(8)
    }

    fn other_uploads(&self) -> String {
        let r = format!("(((i - 1) % {}) + 1)", self.s.repos);
        format!(
            "INSERT INTO upload_sessions (upload_id, tenant_id, repo_id, expected_digest, expected_length, state,
                                          object_staging_key, storage_upload_id, created_by_subject, expires_at,
                                          created_at, updated_at, aborted_at, aborted_reason)
             SELECT md5('open-upload:' || i)::uuid, md5('tenant:' || {t})::uuid, md5('repo:' || {r})::uuid,
                    encode(sha256(convert_to('never committed ' || i, 'UTF8')), 'hex'), 1000 + i, s.state,
                    'staging/' || md5('tenant:' || {t}) || '/' || ({key}) || '/' || md5('open-upload:' || i),
                    md5('multipart-open:' || i), 'user-' || (i % 500), s.at + interval '1 day', s.at, s.at,
                    CASE WHEN s.state = 'aborted' THEN s.at + interval '1 hour' END,
                    CASE WHEN s.state = 'aborted' THEN (ARRAY['client_cancelled','expired','digest_mismatch'])[1 + i % 3] END
             FROM generate_series($1::bigint, $2::bigint) AS i,
                  LATERAL (SELECT CASE i % 8 WHEN 5 THEN 'initiated' WHEN 6 THEN 'parts_uploading'
                                             WHEN 7 THEN 'pending_commit' ELSE 'aborted' END AS state,
                                  CASE WHEN i % 8 >= 5 THEN now() - make_interval(mins => (i % 50)::int)
                                       ELSE now() - make_interval(days => 1 + (i % 20)::int) END AS at) AS s",
            t = self.tenant_of_repo(&r),
            key = Self::repo_key(&r),
        )
    }

    fn tombstones(&self) -> String {
        let r = self.repo_of_version("i");
        format!(
            "INSERT INTO tombstones (tenant_id, repo_id, version_id, deleted_by_subject, deleted_at, retention_until, reason)
             SELECT md5('tenant:' || {t})::uuid, md5('repo:' || {r})::uuid, md5('version:' || i)::uuid, 'user-' || (i % 500),
                    now() - make_interval(days => ((i * 13) % 60)::int), now() - make_interval(days => ((i * 13) % 60)::int) + interval '30 days',
                    'superseded by a fixed release'
             FROM generate_series($1::bigint, $2::bigint) AS i WHERE i % 20 = 0",
            t = self.tenant_of_repo(&r)
        )
    }

    fn search_jobs(&self) -> String {
        let r = self.repo_of_version("i");
        format!(
            "INSERT INTO search_index_jobs (tenant_id, version_id, status, available_at, attempts, last_error, created_at, updated_at)
             SELECT md5('tenant:' || {t})::uuid, md5('version:' || i)::uuid, s.status, s.at,
                    CASE s.status WHEN 'failed' THEN 5 WHEN 'completed' THEN 1 ELSE 0 END,
                    CASE WHEN s.status = 'failed' THEN 'search backend rejected batch: 429 Too Many Requests' END,
                    s.at, s.at + interval '2 seconds'
             FROM generate_series($1::bigint, $2::bigint) AS i,
                  LATERAL (SELECT CASE WHEN i % 2000 = 0 THEN 'failed' WHEN i % 500 = 1 THEN 'pending'
                                       WHEN i % 500 = 2 THEN 'processing' WHEN i % 997 = 3 THEN 'cancelled' ELSE 'completed' END AS status,
                                  now() - make_interval(mins => (i % 100000)::int) AS at) AS s",
            t = self.tenant_of_repo(&r)
        )
    }

    fn search_documents(&self) -> String {
        let r = self.repo_of_version("i");
        let p = self.package_of_version("i");
        format!(
            "INSERT INTO search_documents (tenant_id, repo_id, version_id, repo_key, package_type, package_namespace,
                                           package_name, package_version, manifest_json, published_at, search_text, indexed_at, updated_at)
             SELECT md5('tenant:' || {t})::uuid, md5('repo:' || {r})::uuid, md5('version:' || i)::uuid, {key},
                    (ARRAY['npm','maven','pypi','oci','nuget','generic'])[1 + {p} % 6], 'org' || ({p} % 50),
                    'pkg-' || {p}, i::text, jsonb_build_object('summary', 'package ' || {p}),
                    now() - interval '60 days',
                    'pkg-' || {p} || ' ' || ({key}) || ' release ' || i || ' ' ||
                    (ARRAY['http client','json parser','image layer','build plugin','crypto library','logging'])[1 + i % 6],
                    now() - interval '59 days', now() - interval '59 days'
             FROM generate_series($1::bigint, $2::bigint) AS i WHERE i % 20 > 1",
            t = self.tenant_of_repo(&r),
            key = Self::repo_key(&r),
        )
    }

    fn policy_evaluations(&self) -> String {
        let r = self.repo_of_version("(i * 10)");
        format!(
            "INSERT INTO policy_evaluations (tenant_id, repo_id, version_id, action, decision, policy_engine_version, reason, details,
                                             evaluated_at, evaluated_by_subject)
             SELECT md5('tenant:' || {t})::uuid, md5('repo:' || {r})::uuid, md5('version:' || (i * 10))::uuid,
                    (ARRAY['publish','promote'])[1 + i % 2], (ARRAY['allow','allow','allow','deny','quarantine'])[1 + i % 5],
                    'opa-0.6' || (i % 3), 'policy bundle decision', jsonb_build_object('rule', 'rule-' || (i % 17)),
                    now() - make_interval(mins => (i % 90000)::int), 'svc-policy'
             FROM generate_series($1::bigint, $2::bigint) AS i",
            t = self.tenant_of_repo(&r)
        )
    }

    fn quarantine(&self) -> String {
        let r = self.repo_of_version("((i - 1) * 500 + 2)");
        format!(
            "INSERT INTO quarantine_items (tenant_id, repo_id, version_id, status, reason, created_at, resolved_at, resolved_by_subject)
             SELECT md5('tenant:' || {t})::uuid, md5('repo:' || {r})::uuid, md5('version:' || ((i - 1) * 500 + 2))::uuid,
                    (ARRAY['quarantined','released','rejected'])[1 + i % 3], 'policy decision quarantine',
                    now() - interval '20 days', CASE WHEN i % 3 > 0 THEN now() - interval '19 days' END,
                    CASE WHEN i % 3 > 0 THEN 'user-1' END
             FROM generate_series($1::bigint, $2::bigint) AS i",
            t = self.tenant_of_repo(&r)
        )
    }

    fn protections(&self) -> String {
        // Legal holds and protections on every 400th version (published ones), a fifth of them released.
        let r = self.repo_of_version("((i - 1) * 400 + 3)");
        format!(
            "INSERT INTO artifact_protections (tenant_id, repo_id, version_id, mode, reason, protected_by_subject, protected_at,
                                               released_at, released_by_subject, release_reason)
             SELECT md5('tenant:' || {t})::uuid, md5('repo:' || {r})::uuid, md5('version:' || ((i - 1) * 400 + 3))::uuid,
                    (ARRAY['legal_hold','protected'])[1 + i % 2], 'litigation hold ' || i, 'compliance-officer',
                    now() - make_interval(days => (i % 40)::int),
                    CASE WHEN i % 5 = 0 THEN now() - interval '1 day' END,
                    CASE WHEN i % 5 = 0 THEN 'compliance-officer' END,
                    CASE WHEN i % 5 = 0 THEN 'case closed' END
             FROM generate_series($1::bigint, $2::bigint) AS i",
            t = self.tenant_of_repo(&r)
        )
    }

    fn role_bindings(&self) -> String {
        let r = "((i - 1) / 3 + 1)";
        format!(
            "INSERT INTO role_bindings (tenant_id, repo_id, subject, roles, updated_by_subject, updated_at)
             SELECT md5('tenant:' || {t})::uuid, md5('repo:' || {r})::uuid, 'user-' || (i % 500 + 1000 * (i % 3)),
                    CASE i % 3 WHEN 0 THEN ARRAY['reader'] WHEN 1 THEN ARRAY['reader','writer'] ELSE ARRAY['admin'] END, 'user-1', now() - interval '100 days'
             FROM generate_series($1::bigint, $2::bigint) AS i",
            t = self.tenant_of_repo(r)
        )
    }

    fn repo_governance(&self) -> String {
        let r = "(i * 10)";
        format!(
            "INSERT INTO repo_governance_policies (tenant_id, repo_id, min_tombstone_retention_days, require_dual_control_for_tombstone,
                                                   updated_by_subject, updated_at)
             SELECT md5('tenant:' || {t})::uuid, md5('repo:' || {r})::uuid, 30 + i % 60, i % 2 = 0, 'user-1', now() - interval '50 days'
             FROM generate_series($1::bigint, $2::bigint) AS i WHERE i * 10 <= {repos}",
            t = self.tenant_of_repo(r),
            repos = self.s.repos
        )
    }

    fn approvals(&self) -> String {
        let r = self.repo_of_version("((i - 1) * 1000 + 4)");
        format!(
            "INSERT INTO governance_approvals (tenant_id, repo_id, action, resource_type, resource_id, justification,
                                               requested_by_subject, requested_at, approved_by_subject, approved_at, status)
             SELECT md5('tenant:' || {t})::uuid, md5('repo:' || {r})::uuid, 'package.version.tombstone', 'package_version',
                    md5('version:' || ((i - 1) * 1000 + 4))::uuid::text, 'retire vulnerable release', 'user-2', now() - interval '7 days',
                    CASE WHEN i % 2 = 0 THEN 'user-3' END, CASE WHEN i % 2 = 0 THEN now() - interval '6 days' END,
                    (ARRAY['pending','approved','consumed','cancelled'])[1 + i % 4]
             FROM generate_series($1::bigint, $2::bigint) AS i",
            t = self.tenant_of_repo(&r)
        )
    }

    fn gc_runs(&self) -> String {
        // Runs every six hours per tenant, most executing with the admin CLI's
        // grace of 0 h; the newest one never completed (a crashed run).
        format!(
            "INSERT INTO gc_runs (run_id, tenant_id, initiated_by_subject, mode, retention_grace_hours, batch_size, started_at,
                                  completed_at, marked_count, candidate_blob_count, deleted_blob_count, deleted_version_count)
             SELECT md5('gc:' || i)::uuid, md5('tenant:' || ((i - 1) % {tenants} + 1))::uuid, 'ops-admin',
                    CASE WHEN i % 5 = 0 THEN 'dry_run' ELSE 'execute' END, CASE WHEN i % 7 = 0 THEN 24 ELSE 0 END, 200,
                    s.at, CASE WHEN i = {total} THEN NULL ELSE s.at + make_interval(secs => 20 + i % 200) END,
                    1000 + i % 500, i % 4, CASE WHEN i % 5 = 0 THEN 0 ELSE i % 4 END, CASE WHEN i % 5 = 0 THEN 0 ELSE i % 2 END
             FROM generate_series($1::bigint, $2::bigint) AS i,
                  LATERAL (SELECT now() - make_interval(hours => (6 * ({total} - i) + 1)::int) AS at) AS s",
            tenants = self.s.tenants,
            total = self.s.gc_runs
        )
    }

    fn gc_marks(&self) -> String {
        let last_completed = self.s.gc_runs - 1;
        format!(
            "INSERT INTO gc_marks (run_id, digest, marked_at)
             SELECT md5('gc:' || {last_completed})::uuid, b.digest, now() - interval '7 hours'
             FROM generate_series($1::bigint, $2::bigint) AS i, {lateral}",
            lateral = self.blob_lateral("i")
        )
    }

    fn audit(&self) -> String {
        // Spread evenly over the span up to now; every 1000th a policy timeout.
        let total = self.s.audit_log;
        let span = self.s.audit_span_days;
        format!(
            "INSERT INTO audit_log (tenant_id, actor_subject, action, resource_type, resource_id, details, occurred_at, correlation_id)
             SELECT md5('tenant:' || (i % {tenants} + 1))::uuid,
                    CASE WHEN i % 17 = 0 THEN 'svc-ci-' || (i % 25) ELSE 'user-' || (i % 5000) END,
                    a.action, a.resource_type, md5('version:' || (i % {versions} + 1)),
                    jsonb_build_object('repoKey', 'libs-release-' || (i % 200), 'clientIp', '10.' || (i % 250) || '.' || (i * 7 % 250) || '.' || (i * 13 % 250),
                                       'userAgent', (ARRAY['npm/10.8','maven/3.9','pip/24.0','containerd/1.7','dotnet/8.0'])[1 + i % 5],
                                       'requestId', md5('request:' || i)),
                    now() - make_interval(secs => ({total} - i)::float8 / {total} * {span} * 86400),
                    md5('correlation:' || i)::uuid
             FROM generate_series($1::bigint, $2::bigint) AS i,
                  LATERAL (SELECT CASE WHEN i % 1000 = 0 THEN 'policy.timeout'
                                       ELSE (ARRAY['package.version.published','upload.committed','upload.session.created',
                                                   'policy.evaluated','package.version.entries.upserted','auth.pat.issued',
                                                   'repo.binding.upserted'])[1 + i % 7] END AS action) AS x,
                  LATERAL (SELECT x.action, CASE WHEN x.action LIKE 'upload%' THEN 'upload_session'
                                                 WHEN x.action LIKE 'auth%' THEN 'token' WHEN x.action LIKE 'repo%' THEN 'repo'
                                                 ELSE 'package_version' END AS resource_type) AS a",
            tenants = self.s.tenants,
            versions = self.s.versions,
        )
    }

    fn outbox(&self) -> String {
        // 0.4 % pending (a live backlog of the last four minutes; a quarter of
        // it waiting for a retry, so not yet available), the rest delivered.
        let total = self.s.outbox_events;
        format!(
            "INSERT INTO outbox_events (event_id, tenant_id, aggregate_type, aggregate_id, event_type, payload, occurred_at,
                                        available_at, delivered_at, delivery_attempts)
             SELECT md5('event:' || i)::uuid, md5('tenant:' || (i % {tenants} + 1))::uuid, 'package_version',
                    md5('version:' || (i % {versions} + 1)), e.event_type,
                    jsonb_build_object('versionId', md5('version:' || (i % {versions} + 1)), 'eventType', e.event_type),
                    e.occurred, CASE WHEN e.pending AND i % 1000 = 0 THEN now() + interval '10 minutes' ELSE e.occurred END,
                    CASE WHEN e.pending THEN NULL ELSE e.occurred + make_interval(secs => 1 + i % 30) END,
                    CASE WHEN e.pending THEN i % 4 ELSE 1 END
             FROM generate_series($1::bigint, $2::bigint) AS i,
                  LATERAL (SELECT i % 250 = 0 AS pending,
                                  (ARRAY['version.published','version.published','version.tombstoned','upload.committed'])[1 + i % 4] AS event_type,
                                  CASE WHEN i % 250 = 0 THEN now() - make_interval(secs => i % 240)
                                       ELSE now() - make_interval(secs => ({total} - i) * 5 + 300) END AS occurred) AS e",
            tenants = self.s.tenants,
            versions = self.s.versions,
        )
    }

    fn users(&self) -> String {
        format!(
            "INSERT INTO users (tenant_id, subject, display_name, email, created_at)
             SELECT md5('tenant:' || (i % {} + 1))::uuid, 'user-' || i, 'User ' || i, 'user' || i || '@example.com', now() - interval '200 days'
             FROM generate_series($1::bigint, $2::bigint) AS i",
            self.s.tenants
        )
    }

    fn tokens(&self) -> String {
        // Only the SHA-256 of a token is stored; every 9th is revoked.
        format!(
            "INSERT INTO personal_access_tokens (token_id, tenant_id, subject, token_hash, scopes, expires_at, revoked_at,
                                                 created_by_subject, created_at, last_used_at, last_used_auth_source)
             SELECT md5('token:' || i)::uuid, md5('tenant:' || (i % {} + 1))::uuid, 'user-' || (i % 500),
                    encode(sha256(convert_to('token-' || i, 'UTF8')), 'hex'), ARRAY['repo:read', 'repo:write'],
                    now() + make_interval(days => (i % 365)::int), CASE WHEN i % 9 = 0 THEN now() - interval '3 days' END,
                    'user-' || (i % 500), now() - interval '90 days', now() - make_interval(mins => (i * 37 % 10000)::int), 'pat'
             FROM generate_series($1::bigint, $2::bigint) AS i",
            self.s.tenants
        )
    }

    fn revocations(&self) -> String {
        format!(
            "INSERT INTO token_revocations (tenant_id, token_id, revoked_by_subject, reason, revoked_at)
             SELECT md5('tenant:' || (i % {} + 1))::uuid, md5('token:' || i)::uuid, 'security-team', 'manual_revocation', now() - interval '3 days'
             FROM generate_series($1::bigint, $2::bigint) AS i WHERE i % 9 = 0",
            self.s.tenants
        )
    }

    fn tenant_role_bindings(&self) -> String {
        "INSERT INTO tenant_role_bindings (tenant_id, subject, roles, updated_by_subject, updated_at)
         SELECT md5('tenant:' || ((i - 1) / 3 + 1))::uuid, (ARRAY['ops-admin','auditor','release-bot'])[1 + i % 3],
                CASE i % 3 WHEN 0 THEN ARRAY['TenantAdmin'] WHEN 1 THEN ARRAY['TenantAuditor'] ELSE ARRAY['TenantOperator'] END, 'bootstrap', now() - interval '300 days'
         FROM generate_series($1::bigint, $2::bigint) AS i"
            .to_string()
    }

    fn tenant_policies(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "tenant_governance_policies",
                "INSERT INTO tenant_governance_policies (tenant_id, min_tombstone_retention_days, require_dual_control_for_tombstone, updated_by_subject)
                 SELECT md5('tenant:' || i)::uuid, 30, i % 2 = 0, 'ops-admin' FROM generate_series($1::bigint, $2::bigint) AS i".into(),
            ),
            (
                "pat_issuance_policies",
                "INSERT INTO pat_issuance_policies (tenant_id, max_ttl_minutes, updated_by_subject)
                 SELECT md5('tenant:' || i)::uuid, 1440, 'ops-admin' FROM generate_series($1::bigint, $2::bigint) AS i".into(),
            ),
            (
                "tenant_admission_policies",
                "INSERT INTO tenant_admission_policies (tenant_id, max_logical_storage_bytes, max_concurrent_upload_sessions, max_pending_search_jobs, updated_by_subject)
                 SELECT md5('tenant:' || i)::uuid, 1099511627776, 200, 10000, 'ops-admin' FROM generate_series($1::bigint, $2::bigint) AS i".into(),
            ),
            (
                "tenant_search_controls",
                "INSERT INTO tenant_search_controls (tenant_id, is_paused, updated_by_subject)
                 SELECT md5('tenant:' || i)::uuid, false, 'ops-admin' FROM generate_series($1::bigint, $2::bigint) AS i".into(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_content_is_deterministic_and_varied() {
        assert_eq!(blob_content(1), blob_content(1));
        assert_ne!(blob_content(1).len(), blob_content(2).len());
        assert!(blob_content(1).starts_with(b"artifortress seed blob 1\n"));
    }

    #[test]
    fn the_blob_layout_covers_every_class() {
        let b = BlobLayout::of(&Scale::Small.sizes(1));
        assert_eq!((b.entry_blobs, b.manifest_blobs, b.committed_only, b.unreferenced), (2_000, 500, 20, 40));
        assert_eq!(b.total(), 2_560);
        assert_eq!(b.committed(), 2_520);
        assert_eq!(Scale::Small.sizes(3).tenants, 3);
    }
}
