-- studies/count without filters: the number of each tenant's countable studies (not deprecated,
-- with at least one series), kept by triggers on studies, so that the count reads one row
-- instead of every index entry (the filtered counts still read the studies_count_* indexes).
CREATE TABLE study_counts (
    tenant    TEXT PRIMARY KEY,
    countable INTEGER NOT NULL DEFAULT 0
);

INSERT INTO study_counts (tenant, countable)
SELECT tenant, COUNT(*) FROM studies WHERE deprecated = 0 AND series_count > 0 GROUP BY tenant;

CREATE TRIGGER study_counts_on_insert AFTER INSERT ON studies
WHEN NEW.deprecated = 0 AND NEW.series_count > 0
BEGIN
    INSERT INTO study_counts (tenant, countable) VALUES (NEW.tenant, 1)
    ON CONFLICT (tenant) DO UPDATE SET countable = countable + 1;
END;

CREATE TRIGGER study_counts_on_delete AFTER DELETE ON studies
WHEN OLD.deprecated = 0 AND OLD.series_count > 0
BEGIN
    UPDATE study_counts SET countable = countable - 1 WHERE tenant = OLD.tenant;
END;

CREATE TRIGGER study_counts_on_update AFTER UPDATE OF tenant, deprecated, series_count ON studies
WHEN (OLD.deprecated = 0 AND OLD.series_count > 0) <> (NEW.deprecated = 0 AND NEW.series_count > 0)
  OR OLD.tenant <> NEW.tenant
BEGIN
    UPDATE study_counts SET countable = countable - 1
    WHERE tenant = OLD.tenant AND OLD.deprecated = 0 AND OLD.series_count > 0;
    INSERT INTO study_counts (tenant, countable)
    SELECT NEW.tenant, 1 WHERE NEW.deprecated = 0 AND NEW.series_count > 0
    ON CONFLICT (tenant) DO UPDATE SET countable = countable + 1;
END;
