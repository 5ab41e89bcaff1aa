-- Core Artifortress catalogue: tenants own repositories, repositories hold
-- packages, package versions point at content-addressed blobs in object storage.

CREATE TABLE tenants (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug         text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    display_name text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE repositories (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name       text NOT NULL,
    format     text NOT NULL CHECK (format IN ('npm', 'maven', 'pypi', 'oci', 'cargo', 'generic')),
    visibility text NOT NULL DEFAULT 'private' CHECK (visibility IN ('private', 'internal', 'public')),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE packages (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repository_id bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    name          text NOT NULL,
    description   text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (repository_id, name)
);

-- Content-addressed: one row per distinct blob, however many versions share it.
CREATE TABLE blobs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    digest       text NOT NULL UNIQUE CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
    size_bytes   bigint NOT NULL CHECK (size_bytes >= 0),
    storage_key  text NOT NULL,
    media_type   text NOT NULL DEFAULT 'application/octet-stream',
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE package_versions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    package_id   bigint NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    version      text NOT NULL,
    blob_id      bigint NOT NULL REFERENCES blobs (id),
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    yanked       boolean NOT NULL DEFAULT false,
    published_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (package_id, version)
);
-- GC asks "is this blob still referenced?"; without it every check scans versions.
CREATE INDEX package_versions_blob_id ON package_versions (blob_id);

CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         text NOT NULL,
    -- Only the SHA-256 of the token is stored; the token itself is shown once.
    token_sha256 text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE role_bindings (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    subject       text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'maintainer', 'reader')),
    -- NULL: the binding covers every repository of the tenant.
    repository_id bigint REFERENCES repositories (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX role_bindings_unique
    ON role_bindings (tenant_id, subject, role, coalesce(repository_id, 0));
