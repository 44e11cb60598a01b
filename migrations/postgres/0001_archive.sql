-- The archive index: patients, studies, series, instances, orders and the study event feed.
-- Integers are BIGINT throughout so both backends decode them as i64 through sqlx::Any.
-- Every row carries its tenant; uniqueness is per tenant.

CREATE TABLE patients (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant      TEXT NOT NULL,
    patient_id  TEXT NOT NULL,
    issuer      TEXT NOT NULL DEFAULT '',
    name        TEXT NOT NULL,
    birth_date  TEXT,
    sex         TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX patients_identity ON patients (tenant, patient_id, issuer);

CREATE TABLE studies (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant              TEXT NOT NULL,
    study_uid           TEXT NOT NULL,
    patient_fk          BIGINT NOT NULL REFERENCES patients (id),
    accession_number    TEXT,
    description         TEXT,
    study_date          TEXT,
    study_time          TEXT,
    referring_physician TEXT,
    received_at         TEXT NOT NULL,
    calling_aet         TEXT,
    station_name        TEXT,
    size_bytes          BIGINT NOT NULL DEFAULT 0,
    deprecated          BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX studies_uid ON studies (tenant, study_uid);
CREATE INDEX studies_patient ON studies (patient_fk);
CREATE INDEX studies_accession ON studies (tenant, accession_number);

CREATE TABLE series (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant               TEXT NOT NULL,
    series_uid           TEXT NOT NULL,
    study_fk             BIGINT NOT NULL REFERENCES studies (id),
    modality             TEXT,
    series_number        BIGINT,
    description          TEXT,
    station_name         TEXT,
    container_identifier TEXT,
    deprecated           BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX series_uid ON series (tenant, series_uid);
CREATE INDEX series_study ON series (study_fk);
CREATE INDEX series_container ON series (tenant, container_identifier);

CREATE TABLE instances (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant           TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    sop_class_uid    TEXT NOT NULL,
    series_fk        BIGINT NOT NULL REFERENCES series (id),
    instance_number  BIGINT,
    medium           TEXT NOT NULL DEFAULT 'default',
    file_path        TEXT NOT NULL,
    size_bytes       BIGINT NOT NULL,
    sha1             TEXT NOT NULL,
    deprecated       BIGINT NOT NULL DEFAULT 0,
    attributes       TEXT NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX instances_uid ON instances (tenant, sop_instance_uid);
CREATE INDEX instances_series ON instances (series_fk);

CREATE TABLE orders (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant      TEXT NOT NULL,
    study_uid   TEXT NOT NULL,
    patient_fk  BIGINT NOT NULL REFERENCES patients (id),
    station_aet TEXT NOT NULL,
    start_date  TEXT NOT NULL,
    start_time  TEXT NOT NULL,
    modality    TEXT NOT NULL,
    accession_number TEXT NOT NULL,
    station_name TEXT,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX orders_study ON orders (tenant, study_uid);
CREATE INDEX orders_worklist ON orders (tenant, station_aet, start_date);
CREATE INDEX orders_patient ON orders (patient_fk);

CREATE TABLE study_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant     TEXT NOT NULL,
    kind       TEXT NOT NULL,
    study_uid  TEXT,
    detail     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX study_events_feed ON study_events (tenant, id);
