-- The forward queue: series waiting to be sent to a DICOM node (`POST series/forward`), and what
-- each job became.
CREATE TABLE forward_queue (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT NOT NULL,
    series_uid  TEXT NOT NULL,
    node        TEXT NOT NULL,
    author      TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    sent        INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    not_before  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX forward_queue_due ON forward_queue (state, not_before, id);
