-- studies/count served from index entries alone: each partial index of 0002 is replaced by one
-- that also carries every other filtered column, so a count never reads the table (a covering
-- index; SQLite needs the partial predicate's columns in it too).
DROP INDEX IF EXISTS studies_count_received;
DROP INDEX IF EXISTS studies_count_aet;
DROP INDEX IF EXISTS studies_count_station;
DROP INDEX IF EXISTS studies_count_size;

CREATE INDEX studies_count_received_cover ON studies
    (tenant, received_at, calling_aet, station_name, size_bytes, deprecated, series_count)
    WHERE deprecated = 0 AND series_count > 0;
CREATE INDEX studies_count_aet_cover ON studies
    (tenant, calling_aet, received_at, station_name, size_bytes, deprecated, series_count)
    WHERE deprecated = 0 AND series_count > 0;
CREATE INDEX studies_count_station_cover ON studies
    (tenant, station_name, received_at, calling_aet, size_bytes, deprecated, series_count)
    WHERE deprecated = 0 AND series_count > 0;
CREATE INDEX studies_count_size_cover ON studies
    (tenant, size_bytes, received_at, calling_aet, station_name, deprecated, series_count)
    WHERE deprecated = 0 AND series_count > 0;
