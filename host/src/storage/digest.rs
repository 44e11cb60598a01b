//! Content digests of stored files, computed as the bytes arrive: XXH3-128 for DICOM instances,
//! SHA-1 where the API names it (uploaded slides and their `fileHash`). A recorded digest says
//! which it is; BLAKE3 digests recorded by earlier versions are still checked.
//!
//! An instance's digest is there to find damage (a copy checked before a relocation trusts it),
//! not to stand against forgery: whoever could rewrite a stored file could rewrite its row too.
//! XXH3-128 finds accidental damage as surely as a cryptographic digest and costs a fifth of
//! BLAKE3 (26 µs against 137 µs for a 512 KB CT here), which is CPU that ingest spends per
//! instance.

use sha1::Digest as _;

/// How a digest is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Recorded as 40 lower-case hex digits (what the seed's `fileHash` compares with).
    Sha1,
    /// Recorded as `blake3:` and 64 lower-case hex digits (instances archived before XXH3).
    Blake3,
    /// Recorded as `xxh3-128:` and 32 lower-case hex digits (the canonical, big-endian form).
    Xxh3,
}

const BLAKE3_PREFIX: &str = "blake3:";
const XXH3_PREFIX: &str = "xxh3-128:";

impl Algorithm {
    /// The algorithm a recorded digest was made with (instances archived before BLAKE3 carry
    /// bare SHA-1 digests); `None` for a text that is neither.
    pub fn of_recorded(recorded: &str) -> Option<Self> {
        let hex = |text: &str, len: usize| text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit());
        if let Some(rest) = recorded.strip_prefix(XXH3_PREFIX) {
            return hex(rest, 32).then_some(Self::Xxh3);
        }
        match recorded.strip_prefix(BLAKE3_PREFIX) {
            Some(rest) if hex(rest, 64) => Some(Self::Blake3),
            None if hex(recorded, 40) => Some(Self::Sha1),
            _ => None,
        }
    }
}

/// A digest being computed.
pub enum Hasher {
    Sha1(sha1::Sha1),
    Blake3(Box<blake3::Hasher>),
    Xxh3(Box<twox_hash::XxHash3_128>),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha1 => Self::Sha1(sha1::Sha1::new()),
            Algorithm::Blake3 => Self::Blake3(Box::new(blake3::Hasher::new())),
            Algorithm::Xxh3 => Self::Xxh3(Box::new(twox_hash::XxHash3_128::new())),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha1(h) => h.update(bytes),
            Self::Blake3(h) => {
                h.update(bytes);
            }
            Self::Xxh3(h) => h.write(bytes),
        }
    }

    /// The digest in its recorded form (see [`Algorithm`]).
    pub fn finish(self) -> String {
        match self {
            Self::Sha1(h) => hex::encode(h.finalize()),
            Self::Blake3(h) => format!("{BLAKE3_PREFIX}{}", h.finalize().to_hex()),
            Self::Xxh3(h) => format!("{XXH3_PREFIX}{:032x}", h.finish_128()),
        }
    }
}

/// Digests what is copied into it (`std::io::copy` from a stored file).
impl std::io::Write for Hasher {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(algorithm: Algorithm, bytes: &[u8]) -> String {
        let mut hasher = Hasher::new(algorithm);
        hasher.update(bytes);
        hasher.finish()
    }

    #[test]
    fn digests_are_recorded_in_a_form_that_names_their_algorithm() {
        let sha1 = digest(Algorithm::Sha1, b"abc");
        assert_eq!(sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        let blake3 = digest(Algorithm::Blake3, b"abc");
        assert_eq!(blake3, "blake3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
        assert_eq!(Algorithm::of_recorded(&sha1), Some(Algorithm::Sha1));
        assert_eq!(Algorithm::of_recorded(&blake3), Some(Algorithm::Blake3));
        assert_eq!(Algorithm::of_recorded("blake3:abc"), None);
        // The XXH3-128 of "abc" in its canonical form (xxhsum -H2).
        let xxh3 = digest(Algorithm::Xxh3, b"abc");
        assert_eq!(xxh3, "xxh3-128:06b05ab6733a618578af5f94892f3950");
        assert_eq!(Algorithm::of_recorded(&xxh3), Some(Algorithm::Xxh3));
        assert_eq!(Algorithm::of_recorded("xxh3-128:06b05ab6"), None);
        assert_eq!(Algorithm::of_recorded("not a digest"), None);
    }

    #[test]
    fn a_digest_does_not_depend_on_how_the_bytes_are_split() {
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for algorithm in [Algorithm::Sha1, Algorithm::Blake3, Algorithm::Xxh3] {
            let mut split = Hasher::new(algorithm);
            for chunk in bytes.chunks(16_384 + 7) {
                split.update(chunk);
            }
            assert_eq!(split.finish(), digest(algorithm, &bytes));
        }
    }
}
