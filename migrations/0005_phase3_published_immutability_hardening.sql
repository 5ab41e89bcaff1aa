-- Level 0005: the complete guard of published versions. A published version
-- keeps its identity, author, creation and publication time; it may only stay
-- published (tombstone fields untouched) or become tombstoned; the state's
-- timestamp must be set with it.

CREATE OR REPLACE FUNCTION deny_published_version_mutation() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF NEW.state = 'published' AND NEW.published_at IS NULL THEN
        RAISE EXCEPTION 'published_at is required when state is published';
    END IF;
    IF NEW.state = 'tombstoned' AND NEW.tombstoned_at IS NULL THEN
        RAISE EXCEPTION 'tombstoned_at is required when state is tombstoned';
    END IF;
    IF OLD.state <> 'published' THEN
        RETURN NEW;
    END IF;
    IF NEW.version <> OLD.version OR NEW.package_id <> OLD.package_id
       OR NEW.repo_id <> OLD.repo_id OR NEW.tenant_id <> OLD.tenant_id
       OR NEW.created_by_subject <> OLD.created_by_subject OR NEW.created_at <> OLD.created_at
       OR NEW.published_at IS DISTINCT FROM OLD.published_at THEN
        RAISE EXCEPTION 'published version metadata is immutable';
    END IF;
    IF NEW.state NOT IN ('published', 'tombstoned') THEN
        RAISE EXCEPTION 'published version may only transition to tombstoned';
    END IF;
    IF NEW.state = 'published'
       AND (NEW.tombstoned_at IS DISTINCT FROM OLD.tombstoned_at
            OR NEW.tombstone_reason IS DISTINCT FROM OLD.tombstone_reason) THEN
        RAISE EXCEPTION 'tombstone metadata cannot change while version is published';
    END IF;
    RETURN NEW;
END
$fn$;

DROP TRIGGER IF EXISTS trg_deny_published_version_mutation ON package_versions;
CREATE TRIGGER trg_deny_published_version_mutation
    BEFORE UPDATE ON package_versions
    FOR EACH ROW EXECUTE FUNCTION deny_published_version_mutation();
