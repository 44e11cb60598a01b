-- Old copies of relocated files, to be removed once due (`relocation_keep_s` after the commit
-- that moved them) unless a row names them again by then. Written in that commit, so that a stop
-- before they are due leaves none behind.
CREATE TABLE file_removals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    medium      TEXT NOT NULL,
    file_path   TEXT NOT NULL,
    due_at      TEXT NOT NULL
);
CREATE INDEX file_removals_due ON file_removals (due_at, id);
CREATE INDEX file_removals_file ON file_removals (medium, file_path);
