-- Level 0006: policy decisions, quarantine, and the search-index job queue
-- (the ops summary's failed and pending search jobs).

CREATE TABLE policy_evaluations (
    evaluation_id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id             uuid        NOT NULL REFERENCES tenants (tenant_id),
    repo_id               uuid        NOT NULL REFERENCES repos (repo_id) ON DELETE CASCADE,
    version_id            uuid        REFERENCES package_versions (version_id) ON DELETE SET NULL,
    action                text        NOT NULL CHECK (action IN ('publish', 'promote')),
    decision              text        NOT NULL CHECK (decision IN ('allow', 'deny', 'quarantine')),
    policy_engine_version text,
    reason                text        NOT NULL,
    details               jsonb       NOT NULL DEFAULT '{}'::jsonb,
    evaluated_at          timestamptz NOT NULL DEFAULT now(),
    evaluated_by_subject  text
);
CREATE INDEX idx_policy_evaluations_repo_time ON policy_evaluations (repo_id, evaluated_at DESC);
CREATE INDEX idx_policy_evaluations_decision_time ON policy_evaluations (decision, evaluated_at DESC);

CREATE TABLE quarantine_items (
    quarantine_id       uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid        NOT NULL REFERENCES tenants (tenant_id),
    repo_id             uuid        NOT NULL REFERENCES repos (repo_id) ON DELETE CASCADE,
    version_id          uuid        NOT NULL REFERENCES package_versions (version_id) ON DELETE CASCADE,
    status              text        NOT NULL CHECK (status IN ('quarantined', 'released', 'rejected')),
    reason              text        NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    resolved_at         timestamptz,
    resolved_by_subject text,
    UNIQUE (tenant_id, repo_id, version_id)
);
CREATE INDEX idx_quarantine_items_status_created ON quarantine_items (status, created_at DESC);
CREATE INDEX idx_quarantine_items_repo_status ON quarantine_items (repo_id, status, created_at DESC);

CREATE TABLE search_index_jobs (
    job_id       uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid        NOT NULL REFERENCES tenants (tenant_id),
    version_id   uuid        NOT NULL REFERENCES package_versions (version_id) ON DELETE CASCADE,
    status       text        NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed')),
    available_at timestamptz NOT NULL DEFAULT now(),
    attempts     int         NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, version_id)
);
-- Replaced by the claim-path indexes of 0015.
CREATE INDEX idx_search_index_jobs_pending ON search_index_jobs (status, available_at)
    WHERE status IN ('pending', 'failed');
