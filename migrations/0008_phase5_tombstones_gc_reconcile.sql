-- Level 0008: tombstones with their retention, garbage-collection runs and the
-- blobs each run marked as still referenced. Deleting a blob row must not be
-- blocked by an upload session that committed it: the reference is cleared.

CREATE TABLE tombstones (
    tombstone_id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id          uuid        NOT NULL REFERENCES tenants (tenant_id),
    repo_id            uuid        NOT NULL REFERENCES repos (repo_id),
    version_id         uuid        NOT NULL UNIQUE REFERENCES package_versions (version_id) ON DELETE CASCADE,
    deleted_by_subject text        NOT NULL,
    deleted_at         timestamptz NOT NULL DEFAULT now(),
    retention_until    timestamptz NOT NULL,
    reason             text        NOT NULL
);
CREATE INDEX idx_tombstones_retention ON tombstones (tenant_id, retention_until);

-- A run is incomplete while completed_at is null.
CREATE TABLE gc_runs (
    run_id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid        NOT NULL REFERENCES tenants (tenant_id),
    initiated_by_subject  text        NOT NULL,
    mode                  text        NOT NULL CHECK (mode IN ('dry_run', 'execute')),
    retention_grace_hours int         NOT NULL CHECK (retention_grace_hours >= 0),
    batch_size            int         NOT NULL CHECK (batch_size > 0),
    started_at            timestamptz NOT NULL DEFAULT now(),
    completed_at          timestamptz,
    marked_count          int         NOT NULL DEFAULT 0,
    candidate_blob_count  int         NOT NULL DEFAULT 0,
    deleted_blob_count    int         NOT NULL DEFAULT 0,
    deleted_version_count int         NOT NULL DEFAULT 0,
    delete_error_count    int         NOT NULL DEFAULT 0
);
CREATE INDEX idx_gc_runs_tenant_started ON gc_runs (tenant_id, started_at DESC);

CREATE TABLE gc_marks (
    run_id    uuid        NOT NULL REFERENCES gc_runs (run_id) ON DELETE CASCADE,
    digest    char(64)    NOT NULL REFERENCES blobs (digest) ON DELETE CASCADE,
    marked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, digest)
);
CREATE INDEX idx_gc_marks_digest ON gc_marks (digest);

ALTER TABLE upload_sessions DROP CONSTRAINT IF EXISTS upload_sessions_committed_blob_digest_fkey;
ALTER TABLE upload_sessions ADD CONSTRAINT upload_sessions_committed_blob_digest_fkey
    FOREIGN KEY (committed_blob_digest) REFERENCES blobs (digest) ON DELETE SET NULL;
