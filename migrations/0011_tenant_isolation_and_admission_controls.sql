-- Level 0011: per-tenant admission limits, and per-tenant indexes for the
-- search-job and upload-session counts.

CREATE TABLE tenant_admission_policies (
    tenant_id                      uuid        PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    max_logical_storage_bytes      bigint      NOT NULL CHECK (max_logical_storage_bytes >= 10485760),
    max_concurrent_upload_sessions int         NOT NULL CHECK (max_concurrent_upload_sessions BETWEEN 1 AND 1000),
    max_pending_search_jobs        int         NOT NULL CHECK (max_pending_search_jobs BETWEEN 1 AND 50000),
    updated_by_subject             text        NOT NULL,
    updated_at                     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_search_index_jobs_tenant_status ON search_index_jobs (tenant_id, status, updated_at DESC);
CREATE INDEX idx_upload_sessions_tenant_state ON upload_sessions (tenant_id, state, created_at DESC);
