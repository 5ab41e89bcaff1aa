-- Level 0001: tenants, the artifact catalogue, content-addressed blobs, the audit
-- trail and the transactional outbox.

CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS citext;

CREATE TABLE tenants (
    tenant_id  uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    slug       citext      NOT NULL UNIQUE,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE repos (
    repo_id    uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id  uuid        NOT NULL REFERENCES tenants (tenant_id),
    repo_key   citext      NOT NULL,
    repo_type  text        NOT NULL CHECK (repo_type IN ('local', 'remote', 'virtual')),
    config     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, repo_key)
);

CREATE TABLE packages (
    package_id   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid        NOT NULL REFERENCES tenants (tenant_id),
    repo_id      uuid        NOT NULL REFERENCES repos (repo_id),
    package_type text        NOT NULL,
    namespace    text,
    name         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- A package is identified by its coordinate; no namespace counts as ''.
CREATE UNIQUE INDEX ux_packages_coordinate ON packages (repo_id, package_type, coalesce(namespace, ''), name);

-- One row per distinct content: the digest is the bare lowercase hex SHA-256
-- of the object, storage_key its key from the bucket root. No tenant: shared.
CREATE TABLE blobs (
    digest       char(64)    PRIMARY KEY,
    length_bytes bigint      NOT NULL CHECK (length_bytes > 0),
    storage_key  text        NOT NULL UNIQUE,
    object_etag  text,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE package_versions (
    version_id         uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid        NOT NULL REFERENCES tenants (tenant_id),
    repo_id            uuid        NOT NULL REFERENCES repos (repo_id),
    package_id         uuid        NOT NULL REFERENCES packages (package_id),
    version            text        NOT NULL,
    state              text        NOT NULL CHECK (state IN ('draft', 'published', 'tombstoned')),
    published_at       timestamptz,
    created_by_subject text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    tombstoned_at      timestamptz,
    tombstone_reason   text,
    UNIQUE (repo_id, package_id, version)
);

-- The files of a version, each pointing at its blob.
CREATE TABLE artifact_entries (
    entry_id        bigint   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version_id      uuid     NOT NULL REFERENCES package_versions (version_id) ON DELETE CASCADE,
    relative_path   text     NOT NULL,
    blob_digest     char(64) NOT NULL REFERENCES blobs (digest),
    checksum_sha1   char(40),
    checksum_sha256 char(64),
    size_bytes      bigint   NOT NULL CHECK (size_bytes > 0),
    UNIQUE (version_id, relative_path)
);

CREATE TABLE audit_log (
    audit_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     uuid        NOT NULL,
    actor_subject text        NOT NULL,
    action        text        NOT NULL,
    resource_type text        NOT NULL,
    resource_id   text        NOT NULL,
    details       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    occurred_at   timestamptz NOT NULL DEFAULT now()
);

-- Events written with the change that caused them, delivered later by the
-- worker; pending while delivered_at is null.
CREATE TABLE outbox_events (
    event_id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid        NOT NULL,
    aggregate_type    text        NOT NULL,
    aggregate_id      text        NOT NULL,
    event_type        text        NOT NULL,
    payload           jsonb       NOT NULL,
    occurred_at       timestamptz NOT NULL DEFAULT now(),
    available_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at      timestamptz,
    delivery_attempts int         NOT NULL DEFAULT 0
);

CREATE INDEX idx_packages_repo_lookup ON packages (repo_id, package_type, namespace, name);
CREATE INDEX idx_package_versions_resolve ON package_versions (repo_id, package_id, version);
CREATE INDEX idx_artifact_entries_version ON artifact_entries (version_id);
CREATE INDEX idx_artifact_entries_blob ON artifact_entries (blob_digest);
CREATE INDEX idx_outbox_pending ON outbox_events (available_at) WHERE delivered_at IS NULL;
