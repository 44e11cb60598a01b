-- studies/count served from index entries alone: each partial index of 0002 is replaced by one
-- that INCLUDEs every other filtered column, so a count is an index-only scan.
DROP INDEX IF EXISTS studies_count_received;
DROP INDEX IF EXISTS studies_count_aet;
DROP INDEX IF EXISTS studies_count_station;
DROP INDEX IF EXISTS studies_count_size;

CREATE INDEX studies_count_received_cover ON studies (tenant, received_at)
    INCLUDE (calling_aet, station_name, size_bytes) WHERE deprecated = 0 AND series_count > 0;
CREATE INDEX studies_count_aet_cover ON studies (tenant, calling_aet, received_at)
    INCLUDE (station_name, size_bytes) WHERE deprecated = 0 AND series_count > 0;
CREATE INDEX studies_count_station_cover ON studies (tenant, station_name, received_at)
    INCLUDE (calling_aet, size_bytes) WHERE deprecated = 0 AND series_count > 0;
CREATE INDEX studies_count_size_cover ON studies (tenant, size_bytes)
    INCLUDE (received_at, calling_aet, station_name) WHERE deprecated = 0 AND series_count > 0;
