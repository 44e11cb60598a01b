-- studies/count without filters: the number of each tenant's countable studies (not deprecated,
-- with at least one series), kept by triggers on studies, so that the count reads one row
-- instead of every index entry (the filtered counts still read the studies_count_* indexes).
-- Inserts and deletes are counted once per statement (a bulk load updates the counter once, not
-- once per row); updates, which concern a study or a few, per row.
CREATE TABLE study_counts (
    tenant    TEXT PRIMARY KEY,
    countable BIGINT NOT NULL DEFAULT 0
);

INSERT INTO study_counts (tenant, countable)
SELECT tenant, COUNT(*) FROM studies WHERE deprecated = 0 AND series_count > 0 GROUP BY tenant;

CREATE FUNCTION study_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO study_counts (tenant, countable)
    SELECT tenant, COUNT(*) FROM inserted WHERE deprecated = 0 AND series_count > 0 GROUP BY tenant
    ON CONFLICT (tenant) DO UPDATE SET countable = study_counts.countable + EXCLUDED.countable;
    RETURN NULL;
END
$$;

CREATE FUNCTION study_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE study_counts c SET countable = c.countable - d.n
    FROM (SELECT tenant, COUNT(*) AS n FROM deleted WHERE deprecated = 0 AND series_count > 0 GROUP BY tenant) d
    WHERE c.tenant = d.tenant;
    RETURN NULL;
END
$$;

CREATE FUNCTION study_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.deprecated = 0 AND OLD.series_count > 0 THEN
        UPDATE study_counts SET countable = countable - 1 WHERE tenant = OLD.tenant;
    END IF;
    IF NEW.deprecated = 0 AND NEW.series_count > 0 THEN
        INSERT INTO study_counts (tenant, countable) VALUES (NEW.tenant, 1)
        ON CONFLICT (tenant) DO UPDATE SET countable = study_counts.countable + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER study_counts_on_insert AFTER INSERT ON studies
REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION study_counts_inserted();

CREATE TRIGGER study_counts_on_delete AFTER DELETE ON studies
REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION study_counts_deleted();

CREATE TRIGGER study_counts_on_update AFTER UPDATE OF tenant, deprecated, series_count ON studies
FOR EACH ROW WHEN ((OLD.deprecated = 0 AND OLD.series_count > 0) IS DISTINCT FROM (NEW.deprecated = 0 AND NEW.series_count > 0)
    OR OLD.tenant IS DISTINCT FROM NEW.tenant)
EXECUTE FUNCTION study_counts_updated();
