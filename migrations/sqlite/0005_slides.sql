-- Non-DICOM pathology slides (`pathoRsListener`): the slide file (a single WSI file or a MIRAX
-- ZIP archive) stored beside the DICOM sidecar instance that describes it.
CREATE TABLE slide_files (
    instance_fk   INTEGER PRIMARY KEY REFERENCES instances (id),
    medium        TEXT NOT NULL,
    file_path     TEXT NOT NULL,
    -- The name the client gave the file, served back in Content-Disposition.
    file_name     TEXT NOT NULL,
    content_type  TEXT,
    size_bytes    INTEGER NOT NULL,
    sha1          TEXT NOT NULL,
    -- 1 for a MIRAX ZIP archive, 0 for a single slide file.
    mirax         INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL
);

-- Forward jobs send either a DICOM series to a node (`dicom`) or the non-DICOM slides with a
-- container identifier to another archive's HTTP endpoint (`slides`; `node` holds the URL).
ALTER TABLE forward_queue ADD COLUMN kind TEXT NOT NULL DEFAULT 'dicom';
ALTER TABLE forward_queue ADD COLUMN container_identifier TEXT;
