-- Level 0002: users, personal access tokens (only their SHA-256 is kept), their
-- revocations, and role bindings per repository.

CREATE TABLE users (
    user_id      uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid        NOT NULL REFERENCES tenants (tenant_id),
    subject      text        NOT NULL,
    display_name text,
    email        citext,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, subject)
);

CREATE TABLE personal_access_tokens (
    token_id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid        NOT NULL REFERENCES tenants (tenant_id),
    subject            text        NOT NULL,
    token_hash         char(64)    NOT NULL UNIQUE,
    scopes             text[]      NOT NULL DEFAULT '{}'::text[],
    expires_at         timestamptz NOT NULL,
    revoked_at         timestamptz,
    created_by_subject text        NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (expires_at > created_at)
);

CREATE TABLE token_revocations (
    revocation_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id          uuid        NOT NULL REFERENCES tenants (tenant_id),
    token_id           uuid        NOT NULL REFERENCES personal_access_tokens (token_id) ON DELETE CASCADE,
    revoked_by_subject text        NOT NULL,
    reason             text        NOT NULL DEFAULT 'manual_revocation',
    revoked_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE role_bindings (
    binding_id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id          uuid        NOT NULL REFERENCES tenants (tenant_id),
    repo_id            uuid        NOT NULL REFERENCES repos (repo_id) ON DELETE CASCADE,
    subject            text        NOT NULL,
    roles              text[]      NOT NULL,
    updated_by_subject text        NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, repo_id, subject)
);

CREATE INDEX idx_pat_hash_lookup ON personal_access_tokens (token_hash);
CREATE INDEX idx_pat_subject ON personal_access_tokens (tenant_id, subject);
CREATE INDEX idx_pat_active ON personal_access_tokens (tenant_id, expires_at) WHERE revoked_at IS NULL;
CREATE INDEX idx_token_revocations_token_id ON token_revocations (token_id);
CREATE INDEX idx_role_bindings_repo_subject ON role_bindings (repo_id, subject);
CREATE INDEX idx_role_bindings_subject ON role_bindings (tenant_id, subject);
-- The ops summary's policy-timeout count reads through this one.
CREATE INDEX idx_audit_action_time ON audit_log (action, occurred_at DESC);
