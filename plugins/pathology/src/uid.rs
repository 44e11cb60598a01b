//! UIDs derived from what identifies a slide, so that sending the same slide again gives the
//! same UIDs: `2.25.` followed by the decimal form of a name-based (SHA-1, version 5 layout)
//! UUID of a namespaced name. At most 44 characters, always a valid UID.

use sha1::{Digest, Sha1};

/// The Study Instance UID of a case, from its Accession Number.
pub fn study(accession_number: &str) -> String {
    derive("study", accession_number)
}

/// The Series Instance UID of a slide, from its Container Identifier (the slide barcode).
pub fn series(container_identifier: &str) -> String {
    derive("series", container_identifier)
}

/// The SOP Instance UID of a slide's sidecar, from its Container Identifier.
pub fn sop_instance(container_identifier: &str) -> String {
    derive("sop", container_identifier)
}

/// The Specimen UID of one level (specimen, block, slide) of a case's specimen hierarchy: the
/// same physical specimen keeps its UID across every slide cut from it.
pub fn specimen(accession_number: &str, level: &str, identifier: &str) -> String {
    // The accession scopes the identifier (specimen "A" exists in every case); the level keeps
    // a block and a slide that share an identifier apart. Lengths prefix each part so that no
    // two different triples make the same name.
    derive("specimen", &format!("{}:{accession_number}:{level}:{}:{identifier}", accession_number.len(), identifier.len()))
}

/// `2.25.<uuid as decimal>` for `wasmpacs:<namespace>:<name>`.
fn derive(namespace: &str, name: &str) -> String {
    let digest = Sha1::digest(format!("wasmpacs:{namespace}:{name}").as_bytes());
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    // RFC 9562 layout of a name-based SHA-1 UUID (version 5, variant 10), as 2.25 expects a UUID.
    uuid[6] = (uuid[6] & 0x0f) | 0x50;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    format!("2.25.{}", u128::from_be_bytes(uuid))
}

/// True for a syntactically valid UID: at most 64 characters, dot-separated numeric components
/// without leading zeros.
pub fn is_valid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && uid.split('.').all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) && (c == "0" || !c.starts_with('0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_uids_are_stable_valid_and_apart() {
        let a = study("I23-00102");
        assert_eq!(a, study("I23-00102"));
        assert!(a.starts_with("2.25.") && a.len() <= 44 && is_valid(&a), "{a}");
        assert_ne!(series("I23-00102-A-1-1"), sop_instance("I23-00102-A-1-1"));
        assert_ne!(study("X"), series("X"));
        assert_ne!(specimen("A", "block", "1"), specimen("A", "slide", "1"));
        assert_ne!(specimen("A:1", "block", "2"), specimen("A", "block", "1:2"));
    }

    #[test]
    fn uid_syntax() {
        assert!(is_valid("1.2.826.0.1.3680043.2.619.20220407.1"));
        for bad in ["", "1..2", "1.02", "1.a", "1.2.", &"1".repeat(65)] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
