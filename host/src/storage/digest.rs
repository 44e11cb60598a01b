//! Content digests of stored files, computed as the bytes arrive: BLAKE3 for DICOM instances
//! (about four times cheaper than SHA-1 here, and still cryptographic), SHA-1 where the API
//! names it (uploaded slides and their `fileHash`). A recorded digest says which it is.

use sha1::Digest as _;

/// How a digest is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Recorded as 40 lower-case hex digits (what the seed's `fileHash` compares with).
    Sha1,
    /// Recorded as `blake3:` and 64 lower-case hex digits.
    Blake3,
}

const BLAKE3_PREFIX: &str = "blake3:";

impl Algorithm {
    /// The algorithm a recorded digest was made with (instances archived before BLAKE3 carry
    /// bare SHA-1 digests); `None` for a text that is neither.
    pub fn of_recorded(recorded: &str) -> Option<Self> {
        let hex = |text: &str, len: usize| text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit());
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
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha1 => Self::Sha1(sha1::Sha1::new()),
            Algorithm::Blake3 => Self::Blake3(Box::new(blake3::Hasher::new())),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha1(h) => h.update(bytes),
            Self::Blake3(h) => {
                h.update(bytes);
            }
        }
    }

    /// The digest in its recorded form (see [`Algorithm`]).
    pub fn finish(self) -> String {
        match self {
            Self::Sha1(h) => hex::encode(h.finalize()),
            Self::Blake3(h) => format!("{BLAKE3_PREFIX}{}", h.finalize().to_hex()),
        }
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
        assert_eq!(Algorithm::of_recorded("not a digest"), None);
    }

    #[test]
    fn a_digest_does_not_depend_on_how_the_bytes_are_split() {
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for algorithm in [Algorithm::Sha1, Algorithm::Blake3] {
            let mut split = Hasher::new(algorithm);
            for chunk in bytes.chunks(16_384 + 7) {
                split.update(chunk);
            }
            assert_eq!(split.finish(), digest(algorithm, &bytes));
        }
    }
}
