-- Level 0012: tenant-wide role bindings, and a correlation id on every audit row
-- (rows written before this level get a random one).

CREATE TABLE tenant_role_bindings (
    binding_id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id          uuid        NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    subject            text        NOT NULL,
    roles              text[]      NOT NULL,
    updated_by_subject text        NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, subject)
);
CREATE INDEX idx_tenant_role_bindings_subject ON tenant_role_bindings (tenant_id, subject);

ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS correlation_id uuid NOT NULL DEFAULT gen_random_uuid();
CREATE INDEX idx_audit_log_tenant_occurred ON audit_log (tenant_id, occurred_at DESC);
CREATE INDEX idx_audit_log_correlation ON audit_log (tenant_id, correlation_id, occurred_at DESC);
