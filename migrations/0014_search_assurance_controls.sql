-- Level 0014: search jobs can be cancelled; indexing can be paused per tenant.

ALTER TABLE search_index_jobs DROP CONSTRAINT IF EXISTS search_index_jobs_status_check;
ALTER TABLE search_index_jobs ADD CONSTRAINT search_index_jobs_status_check
    CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'cancelled'));

CREATE TABLE tenant_search_controls (
    tenant_id          uuid        PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    is_paused          boolean     NOT NULL DEFAULT false,
    pause_reason       text,
    updated_by_subject text        NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_search_index_jobs_tenant_status_updated ON search_index_jobs (tenant_id, status, updated_at DESC);
