-- Level 0009: the search read model. search_vector is computed by PostgreSQL
-- from search_text (stored generated column): a restore recomputes it, never copies it.

CREATE TABLE search_documents (
    document_id       uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid        NOT NULL REFERENCES tenants (tenant_id),
    repo_id           uuid        NOT NULL REFERENCES repos (repo_id) ON DELETE CASCADE,
    version_id        uuid        NOT NULL REFERENCES package_versions (version_id) ON DELETE CASCADE,
    repo_key          text        NOT NULL,
    package_type      text        NOT NULL,
    package_namespace text,
    package_name      text        NOT NULL,
    package_version   text        NOT NULL,
    manifest_json     jsonb,
    published_at      timestamptz,
    search_text       text        NOT NULL,
    indexed_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    search_vector     tsvector    GENERATED ALWAYS AS (to_tsvector('simple', search_text)) STORED,
    UNIQUE (tenant_id, version_id)
);
CREATE INDEX idx_search_documents_repo_name
    ON search_documents (tenant_id, repo_key, package_name, package_version DESC);
CREATE INDEX idx_search_documents_vector ON search_documents USING gin (search_vector);
