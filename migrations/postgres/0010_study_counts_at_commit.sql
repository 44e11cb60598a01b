-- The count of countable studies changes when a unit of work commits, not when a study's row
-- changes: the tenant's counter row is then the last lock a unit takes. Updated mid-unit, a
-- study becoming countable locked the counter while its unit still had studies to lock, and a
-- unit holding one of those studies and making it countable or not waited for the counter:
-- each waited on the other (PostgreSQL ends such a deadlock by failing one). The insert and
-- delete triggers of 0007 stay immediate: studies are inserted with no series (not countable),
-- so they leave the counter alone, and no unit deletes a study. A unit that someday deletes a
-- study it made countable must defer those too, or the immediate -1 would precede the +1.
DROP TRIGGER study_counts_on_update ON studies;

CREATE CONSTRAINT TRIGGER study_counts_on_update AFTER UPDATE OF tenant, deprecated, series_count ON studies
DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW WHEN ((OLD.deprecated = 0 AND OLD.series_count > 0) IS DISTINCT FROM (NEW.deprecated = 0 AND NEW.series_count > 0)
    OR OLD.tenant IS DISTINCT FROM NEW.tenant)
EXECUTE FUNCTION study_counts_updated();
