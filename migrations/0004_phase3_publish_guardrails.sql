-- Level 0004: a published version's identity cannot change (first form of the
-- guard; 0005 replaces the function with the complete rules).

CREATE INDEX idx_package_versions_state ON package_versions (repo_id, state, published_at DESC);
CREATE INDEX idx_outbox_aggregate_pending ON outbox_events (aggregate_type, aggregate_id, available_at)
    WHERE delivered_at IS NULL;

CREATE OR REPLACE FUNCTION deny_published_version_mutation() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF OLD.state = 'published'
       AND (NEW.version <> OLD.version OR NEW.package_id <> OLD.package_id
            OR NEW.repo_id <> OLD.repo_id OR NEW.tenant_id <> OLD.tenant_id) THEN
        RAISE EXCEPTION 'published version metadata is immutable';
    END IF;
    RETURN NEW;
END
$fn$;

DROP TRIGGER IF EXISTS trg_deny_published_version_mutation ON package_versions;
CREATE TRIGGER trg_deny_published_version_mutation
    BEFORE UPDATE ON package_versions
    FOR EACH ROW EXECUTE FUNCTION deny_published_version_mutation();
