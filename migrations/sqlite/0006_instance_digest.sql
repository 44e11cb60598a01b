-- An instance's file digest names its algorithm: `blake3:<hex>` for instances stored from now
-- on, bare SHA-1 hex for those stored before (see host/src/storage/digest.rs).
ALTER TABLE instances RENAME COLUMN sha1 TO digest;
