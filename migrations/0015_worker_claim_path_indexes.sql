-- Level 0015: indexes for the worker's claim paths (published-version events,
-- claimable and reclaimable search jobs); the older pending-jobs index goes.

CREATE INDEX idx_outbox_version_published_claim ON outbox_events (occurred_at, available_at, tenant_id)
    WHERE delivered_at IS NULL AND event_type = 'version.published';

DROP INDEX IF EXISTS idx_search_index_jobs_pending;

CREATE INDEX idx_search_index_jobs_pending_claim ON search_index_jobs (status, available_at, created_at, tenant_id)
    WHERE status IN ('pending', 'failed');
CREATE INDEX idx_search_index_jobs_processing_reclaim ON search_index_jobs (status, updated_at, tenant_id)
    WHERE status = 'processing';
