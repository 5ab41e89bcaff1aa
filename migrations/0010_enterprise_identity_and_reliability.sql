-- Level 0010: when and how a token was last used, and per-tenant token issuance limits.

ALTER TABLE personal_access_tokens
    ADD COLUMN IF NOT EXISTS last_used_at timestamptz,
    ADD COLUMN IF NOT EXISTS last_used_auth_source text;

CREATE TABLE pat_issuance_policies (
    tenant_id                uuid        PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    max_ttl_minutes          int         NOT NULL CHECK (max_ttl_minutes BETWEEN 5 AND 10080),
    allow_bootstrap_issuance boolean     NOT NULL DEFAULT true,
    updated_by_subject       text        NOT NULL,
    updated_at               timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_pat_last_used ON personal_access_tokens (tenant_id, last_used_at DESC NULLS LAST);
CREATE INDEX idx_pat_active_subject ON personal_access_tokens (tenant_id, subject, revoked_at, expires_at);
