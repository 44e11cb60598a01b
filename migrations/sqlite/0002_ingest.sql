-- DICOM ingest: what the query endpoints need to find studies fast and to serve instances.

-- Number of series per study, kept by ingest and by series moves: studies/count skips studies
-- without series without a join.
ALTER TABLE studies ADD COLUMN series_count INTEGER NOT NULL DEFAULT 0;
UPDATE studies SET series_count = (SELECT COUNT(*) FROM series WHERE series.study_fk = studies.id);

ALTER TABLE series ADD COLUMN body_part TEXT;
ALTER TABLE series ADD COLUMN received_at TEXT;

ALTER TABLE instances ADD COLUMN transfer_syntax TEXT NOT NULL DEFAULT '';
ALTER TABLE instances ADD COLUMN received_at TEXT NOT NULL DEFAULT '';

-- studies/count filters, each served by an index that starts with the tenant.
CREATE INDEX studies_count_received ON studies (tenant, received_at) WHERE deprecated = 0 AND series_count > 0;
CREATE INDEX studies_count_aet ON studies (tenant, calling_aet, received_at) WHERE deprecated = 0 AND series_count > 0;
CREATE INDEX studies_count_station ON studies (tenant, station_name, received_at) WHERE deprecated = 0 AND series_count > 0;
CREATE INDEX studies_count_size ON studies (tenant, size_bytes) WHERE deprecated = 0 AND series_count > 0;

-- QIDO-RS matching.
CREATE INDEX studies_date ON studies (tenant, study_date);
CREATE INDEX patients_name ON patients (tenant, name);
