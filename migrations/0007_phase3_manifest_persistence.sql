-- Level 0007: a version's manifest, optionally stored as a blob of its own.

CREATE TABLE manifests (
    version_id           uuid        PRIMARY KEY REFERENCES package_versions (version_id) ON DELETE CASCADE,
    tenant_id            uuid        NOT NULL REFERENCES tenants (tenant_id),
    repo_id              uuid        NOT NULL REFERENCES repos (repo_id),
    package_type         text        NOT NULL,
    manifest_blob_digest char(64)    REFERENCES blobs (digest),
    manifest_json        jsonb       NOT NULL,
    created_by_subject   text        NOT NULL,
    updated_by_subject   text        NOT NULL,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_manifests_repo_type ON manifests (repo_id, package_type);
CREATE INDEX idx_manifests_tenant_repo ON manifests (tenant_id, repo_id);
