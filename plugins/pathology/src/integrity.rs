//! The client's optional `fileHash` and `fileLength` parts, checked against what the host
//! computed while staging the upload: the SHA-1 and size of a single slide file; for a MIRAX
//! archive, the SHA-1 of its `.mrxs` descriptor and the size of the whole ZIP.

use wasmpacs_sdk::types::StagedFile;
use wasmpacs_sdk::{Response, error, staging};

use crate::parts::{self, Parts};

/// Checks the parts that were sent; a 400 when one is malformed, a 409 when one does not match.
/// `mirax_descriptor` is the `.mrxs` member's path when the file is a MIRAX archive.
pub fn check(parts: &Parts, mirax_descriptor: Option<&str>) -> Result<(), Response> {
    let hash = parts.file_hash.map(expected_hash).transpose()?;
    let length = parts.file_length.map(expected_length).transpose()?;
    if let Some(expected) = length
        && expected != parts.file.size
    {
        return Err(error(
            409,
            format!("fileLength does not match: expected {expected} bytes, the received file has {} bytes", parts.file.size),
        ));
    }
    if let Some(expected) = hash {
        let (computed, of_what) = computed_hash(parts.file, mirax_descriptor)?;
        if expected != computed {
            return Err(error(409, format!("fileHash does not match: expected {expected}, computed {computed} ({of_what})")));
        }
    }
    Ok(())
}

/// The SHA-1 the client's hash is compared with, and what it is the hash of.
fn computed_hash(file: &StagedFile, mirax_descriptor: Option<&str>) -> Result<(String, String), Response> {
    Ok(match mirax_descriptor {
        Some(descriptor) => (
            staging::zip_entry_sha1(file.id, descriptor)?.to_ascii_lowercase(),
            format!("SHA-1 of the MIRAX descriptor `{descriptor}`"),
        ),
        None => (file.sha1.to_ascii_lowercase(), "SHA-1 of the received file".to_owned()),
    })
}

/// The `fileHash` part: 40 hexadecimal digits, compared in lower case.
fn expected_hash(part: &StagedFile) -> Result<String, Response> {
    let text = parts::text(part)?;
    let hash = text.trim().to_ascii_lowercase();
    if hash.len() != 40 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(error(400, "the `fileHash` part must be a SHA-1 digest: 40 hexadecimal digits"));
    }
    Ok(hash)
}

/// The `fileLength` part: a count of bytes in decimal.
fn expected_length(part: &StagedFile) -> Result<u64, Response> {
    let text = parts::text(part)?;
    let digits = text.trim();
    match digits.parse::<u64>() {
        Ok(n) if digits.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(error(400, "the `fileLength` part must be the file's size in bytes, in decimal digits")),
    }
}
