-- Level 0003: resumable uploads. An upload writes its object under
-- object_staging_key; committing it records the blob (committed_blob_digest).

CREATE TABLE upload_sessions (
    upload_id             uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid        NOT NULL REFERENCES tenants (tenant_id),
    repo_id               uuid        NOT NULL REFERENCES repos (repo_id) ON DELETE CASCADE,
    expected_digest       char(64)    NOT NULL,
    expected_length       bigint      NOT NULL CHECK (expected_length > 0),
    state                 text        NOT NULL
                          CHECK (state IN ('initiated', 'parts_uploading', 'pending_commit', 'committed', 'aborted')),
    object_staging_key    text,
    storage_upload_id     text,
    committed_blob_digest char(64)    REFERENCES blobs (digest),
    created_by_subject    text        NOT NULL,
    expires_at            timestamptz NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    committed_at          timestamptz,
    aborted_at            timestamptz,
    aborted_reason        text
);

CREATE INDEX idx_upload_sessions_repo_state ON upload_sessions (repo_id, state, created_at DESC);
CREATE INDEX idx_upload_sessions_expires_at ON upload_sessions (expires_at);
CREATE INDEX idx_upload_sessions_tenant_repo_digest ON upload_sessions (tenant_id, repo_id, expected_digest);
