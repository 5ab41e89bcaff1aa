-- Level 0013: governance: minimum tombstone retention and dual control per
-- tenant and repository, protections and legal holds on versions, approvals.

CREATE TABLE tenant_governance_policies (
    tenant_id                                      uuid        PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    min_tombstone_retention_days                   int         NOT NULL CHECK (min_tombstone_retention_days BETWEEN 1 AND 3650),
    require_dual_control_for_tombstone             boolean     NOT NULL DEFAULT false,
    require_dual_control_for_quarantine_resolution boolean     NOT NULL DEFAULT false,
    updated_by_subject                             text        NOT NULL,
    updated_at                                     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE repo_governance_policies (
    repo_policy_id                                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id                                      uuid        NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    repo_id                                        uuid        NOT NULL REFERENCES repos (repo_id) ON DELETE CASCADE,
    min_tombstone_retention_days                   int         CHECK (min_tombstone_retention_days BETWEEN 1 AND 3650),
    require_dual_control_for_tombstone             boolean,
    require_dual_control_for_quarantine_resolution boolean,
    updated_by_subject                             text        NOT NULL,
    updated_at                                     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, repo_id)
);

-- Active while released_at is null; a legal hold keeps GC from deleting the version.
CREATE TABLE artifact_protections (
    protection_id        uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid        NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    repo_id              uuid        NOT NULL REFERENCES repos (repo_id) ON DELETE CASCADE,
    version_id           uuid        NOT NULL REFERENCES package_versions (version_id) ON DELETE CASCADE,
    mode                 text        NOT NULL CHECK (mode IN ('protected', 'legal_hold')),
    reason               text        NOT NULL,
    protected_by_subject text        NOT NULL,
    protected_at         timestamptz NOT NULL DEFAULT now(),
    released_at          timestamptz,
    released_by_subject  text,
    release_reason       text,
    UNIQUE (tenant_id, version_id)
);
CREATE INDEX idx_artifact_protections_active ON artifact_protections (tenant_id, repo_id, released_at, mode);

CREATE TABLE governance_approvals (
    approval_id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid        NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    repo_id              uuid        NOT NULL REFERENCES repos (repo_id) ON DELETE CASCADE,
    action               text        NOT NULL,
    resource_type        text        NOT NULL,
    resource_id          text        NOT NULL,
    justification        text        NOT NULL,
    requested_by_subject text        NOT NULL,
    requested_at         timestamptz NOT NULL DEFAULT now(),
    approved_by_subject  text,
    approved_at          timestamptz,
    status               text        NOT NULL CHECK (status IN ('pending', 'approved', 'consumed', 'cancelled'))
);
CREATE INDEX idx_governance_approvals_repo_status
    ON governance_approvals (tenant_id, repo_id, status, requested_at DESC);
