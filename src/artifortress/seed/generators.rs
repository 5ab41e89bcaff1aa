//! The SQL that fills each table: every value a function of the row number.

use super::{BlobLayout, Sizes};

/// SQL for the seed's tables; `i` is the row number of `generate_series($1, $2)`.
pub(super) struct Generators {
    pub s: Sizes,
    pub b: BlobLayout,
}

/// `md5('<kind>:' || n)` as a uuid: the deterministic id of row n of a kind.
pub(super) fn id(kind: &str, n: &str) -> String {
    format!("md5('{kind}:' || ({n}))::uuid")
}

impl Generators {
    pub(super) fn tenant_of_repo(&self, r: &str) -> String {
        format!("((({r}) - 1) % {} + 1)", self.s.tenants)
    }

    pub(super) fn repo_of_package(&self, p: &str) -> String {
        format!("((({p}) - 1) % {} + 1)", self.s.repos)
    }

    pub(super) fn package_of_version(&self, v: &str) -> String {
        format!("((({v}) - 1) % {} + 1)", self.s.packages)
    }

    pub(super) fn repo_of_version(&self, v: &str) -> String {
        self.repo_of_package(&self.package_of_version(v))
    }

    /// Repository keys: some with a `/`, as upstream allows.
    pub(super) fn repo_key(r: &str) -> String {
        format!(
            "CASE WHEN ({r}) % 7 = 0 THEN 'team-' || (({r}) % 13) || '/generic-' || ({r})
                  ELSE (ARRAY['libs-release','libs-snapshot','npm-local','docker-remote','maven-central','pypi-virtual'])[1 + ({r}) % 6] || '-' || ({r}) END"
        )
    }

    /// Blob j's bytes, digest and key, as SQL (see [`blob_content`]).
    pub(super) fn blob_lateral(&self, j: &str) -> String {
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
    pub(super) fn state(v: &str) -> String {
        format!("CASE WHEN ({v}) % 20 = 0 THEN 'tombstoned' WHEN ({v}) % 20 = 1 THEN 'draft' ELSE 'published' END")
    }

    pub(super) fn tenants(&self) -> String {
        "INSERT INTO tenants (tenant_id, slug, name, created_at)
         SELECT md5('tenant:' || i)::uuid, CASE WHEN i = 1 THEN 'default' ELSE 'tenant-' || i END,
                CASE WHEN i = 1 THEN 'Default' ELSE 'Tenant ' || i END, now() - make_interval(days => 400 - i::int % 300)
         FROM generate_series($1::bigint, $2::bigint) AS i"
            .to_string()
    }

    pub(super) fn repos(&self) -> String {
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

    pub(super) fn packages(&self) -> String {
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

    pub(super) fn versions(&self) -> String {
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

    pub(super) fn blobs(&self) -> String {
        format!(
            "INSERT INTO blobs (digest, length_bytes, storage_key, object_etag, created_at)
             SELECT b.digest, b.length, b.storage_key, md5(b.digest), now() - make_interval(days => 80, mins => (i % 100000)::int)
             FROM generate_series($1::bigint, $2::bigint) AS i, {lateral}",
            lateral = self.blob_lateral("i")
        )
    }

    pub(super) fn entries(&self) -> String {
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

    pub(super) fn manifests(&self) -> String {
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

    pub(super) fn committed_uploads(&self) -> String {
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
    pub(super) fn duplicate_uploads(&self) -> String {
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
    pub(super) fn open_uploads(&self) -> i64 {
        (self.s.versions / 100).max(8)
    }

    pub(super) fn other_uploads(&self) -> String {
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

    pub(super) fn tombstones(&self) -> String {
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

    pub(super) fn search_jobs(&self) -> String {
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

    pub(super) fn search_documents(&self) -> String {
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

    pub(super) fn policy_evaluations(&self) -> String {
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

    pub(super) fn quarantine(&self) -> String {
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

    pub(super) fn protections(&self) -> String {
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

    pub(super) fn role_bindings(&self) -> String {
        let r = "((i - 1) / 3 + 1)";
        format!(
            "INSERT INTO role_bindings (tenant_id, repo_id, subject, roles, updated_by_subject, updated_at)
             SELECT md5('tenant:' || {t})::uuid, md5('repo:' || {r})::uuid, 'user-' || (i % 500 + 1000 * (i % 3)),
                    CASE i % 3 WHEN 0 THEN ARRAY['reader'] WHEN 1 THEN ARRAY['reader','writer'] ELSE ARRAY['admin'] END, 'user-1', now() - interval '100 days'
             FROM generate_series($1::bigint, $2::bigint) AS i",
            t = self.tenant_of_repo(r)
        )
    }

    pub(super) fn repo_governance(&self) -> String {
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

    pub(super) fn approvals(&self) -> String {
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

    pub(super) fn gc_runs(&self) -> String {
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

    pub(super) fn gc_marks(&self) -> String {
        let last_completed = self.s.gc_runs - 1;
        format!(
            "INSERT INTO gc_marks (run_id, digest, marked_at)
             SELECT md5('gc:' || {last_completed})::uuid, b.digest, now() - interval '7 hours'
             FROM generate_series($1::bigint, $2::bigint) AS i, {lateral}",
            lateral = self.blob_lateral("i")
        )
    }

    pub(super) fn audit(&self) -> String {
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

    pub(super) fn outbox(&self) -> String {
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

    pub(super) fn users(&self) -> String {
        format!(
            "INSERT INTO users (tenant_id, subject, display_name, email, created_at)
             SELECT md5('tenant:' || (i % {} + 1))::uuid, 'user-' || i, 'User ' || i, 'user' || i || '@example.com', now() - interval '200 days'
             FROM generate_series($1::bigint, $2::bigint) AS i",
            self.s.tenants
        )
    }

    pub(super) fn tokens(&self) -> String {
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

    pub(super) fn revocations(&self) -> String {
        format!(
            "INSERT INTO token_revocations (tenant_id, token_id, revoked_by_subject, reason, revoked_at)
             SELECT md5('tenant:' || (i % {} + 1))::uuid, md5('token:' || i)::uuid, 'security-team', 'manual_revocation', now() - interval '3 days'
             FROM generate_series($1::bigint, $2::bigint) AS i WHERE i % 9 = 0",
            self.s.tenants
        )
    }

    pub(super) fn tenant_role_bindings(&self) -> String {
        "INSERT INTO tenant_role_bindings (tenant_id, subject, roles, updated_by_subject, updated_at)
         SELECT md5('tenant:' || ((i - 1) / 3 + 1))::uuid, (ARRAY['ops-admin','auditor','release-bot'])[1 + i % 3],
                CASE i % 3 WHEN 0 THEN ARRAY['TenantAdmin'] WHEN 1 THEN ARRAY['TenantAuditor'] ELSE ARRAY['TenantOperator'] END, 'bootstrap', now() - interval '300 days'
         FROM generate_series($1::bigint, $2::bigint) AS i"
            .to_string()
    }

    pub(super) fn tenant_policies(&self) -> Vec<(&'static str, String)> {
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
