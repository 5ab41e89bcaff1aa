-- Operational tables. Their names, columns and status values are a contract:
-- the ops summary, its SLO evaluation, tests and other tools rely on them.
--
-- Every ops-summary query must stay index-only or index-bounded on tables with
-- millions of rows, hence the partial indexes: the states the summary counts
-- (pending, failed, incomplete) are a tiny fraction of each table.

CREATE TABLE outbox_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type   text NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'published', 'dead')),
    attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    available_at timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
-- Pending count and oldest pending age (min(created_at)).
CREATE INDEX outbox_events_pending_created_at
    ON outbox_events (created_at) WHERE status = 'pending';
-- Pending and available now (available_at <= now()); also the publisher's work queue.
CREATE INDEX outbox_events_pending_available_at
    ON outbox_events (available_at) WHERE status = 'pending';

CREATE TABLE search_index_jobs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    package_id  bigint REFERENCES packages (id) ON DELETE SET NULL,
    status      text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'failed', 'done')),
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX search_index_jobs_pending
    ON search_index_jobs (created_at) WHERE status = 'pending';
CREATE INDEX search_index_jobs_failed
    ON search_index_jobs (updated_at) WHERE status = 'failed';

CREATE TABLE gc_runs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    blobs_scanned   bigint NOT NULL DEFAULT 0,
    blobs_deleted   bigint NOT NULL DEFAULT 0,
    bytes_reclaimed bigint NOT NULL DEFAULT 0
);
CREATE INDEX gc_runs_incomplete
    ON gc_runs (started_at) WHERE completed_at IS NULL;

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    action      text NOT NULL,
    resource    text NOT NULL DEFAULT '',
    outcome     text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb
);
-- "policy.timeout events in the last 24 h" and any per-action time window.
CREATE INDEX audit_log_action_occurred_at ON audit_log (action, occurred_at);
