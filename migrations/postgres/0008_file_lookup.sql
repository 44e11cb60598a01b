-- Which row names a stored file: the storage check (`wasmpacs check`) asks it of every file on a
-- medium, and a relocation of every old copy before removing it. Without these, each question
-- reads the whole table.
CREATE INDEX instances_file ON instances (medium, file_path);
CREATE INDEX slide_files_file ON slide_files (medium, file_path);
