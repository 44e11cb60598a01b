//! The parts of the multipart upload, as the host staged them: which part is which, that each
//! is sent once, and reading the small ones (metadata, sidecar, fileHash, fileLength).

use wasmpacs_sdk::staging;
use wasmpacs_sdk::types::StagedFile;
use wasmpacs_sdk::{Response, error};

/// Largest metadata, fileHash or fileLength part.
const TEXT_LIMIT: u64 = 1 << 20;
/// Largest sidecar part.
const SIDECAR_LIMIT: u64 = 16 << 20;
/// Most bytes one `staging::read` returns.
const READ_CHUNK: u64 = 1 << 20;

/// How the slide is described: by metadata JSON or by a sidecar the PACS generated before.
pub enum Description<'a> {
    Metadata(&'a StagedFile),
    Sidecar(&'a StagedFile),
}

/// The parts of one request.
pub struct Parts<'a> {
    /// The slide file or MIRAX archive.
    pub file: &'a StagedFile,
    pub description: Description<'a>,
    pub file_hash: Option<&'a StagedFile>,
    pub file_length: Option<&'a StagedFile>,
}

impl<'a> Parts<'a> {
    /// Sorts the staged parts; a 400 when one is missing or sent twice. Parts with other names
    /// are ignored (form fields a client adds do no harm).
    pub fn sort(files: &'a [StagedFile]) -> Result<Self, Response> {
        if files.is_empty() {
            return Err(error(
                400,
                "the request must be multipart/form-data with a `file` part and a `metadata` or `sidecar` part",
            ));
        }
        let one = |name: &str| -> Result<Option<&'a StagedFile>, Response> {
            let mut found = files.iter().filter(|f| f.part == name);
            let first = found.next();
            if found.next().is_some() {
                return Err(error(400, format!("the `{name}` part is sent more than once")));
            }
            Ok(first)
        };
        let file = one("file")?.ok_or_else(|| error(400, "the `file` part is missing"))?;
        let description = match (one("metadata")?, one("sidecar")?) {
            (Some(metadata), None) => Description::Metadata(metadata),
            (None, Some(sidecar)) => Description::Sidecar(sidecar),
            (None, None) => return Err(error(400, "a `metadata` part (JSON) or a `sidecar` part (DICOM) is required")),
            (Some(_), Some(_)) => {
                return Err(error(400, "send either a `metadata` part or a `sidecar` part, not both"));
            }
        };
        if file.size == 0 {
            return Err(error(400, "the `file` part is empty"));
        }
        Ok(Parts { file, description, file_hash: one("fileHash")?, file_length: one("fileLength")? })
    }
}

/// The file name the client gave the `file` part, without any folders; a 400 when there is none
/// (the sidecar references the slide by it).
pub fn file_name(file: &StagedFile) -> Result<String, Response> {
    let given = file.file_name.as_deref().unwrap_or("");
    let name = given.rsplit(['/', '\\']).next().unwrap_or("").trim();
    if name.is_empty() {
        return Err(error(400, "the `file` part has no file name; the slide is referenced by its file name"));
    }
    Ok(name.to_owned())
}

/// A text part (metadata, fileHash, fileLength), at most 1 MiB of UTF-8.
pub fn text(part: &StagedFile) -> Result<String, Response> {
    let bytes = bytes(part, TEXT_LIMIT)?;
    String::from_utf8(bytes).map_err(|_| error(400, format!("the `{}` part is not UTF-8 text", part.part)))
}

/// The sidecar part's bytes, at most 16 MiB.
pub fn sidecar(part: &StagedFile) -> Result<Vec<u8>, Response> {
    bytes(part, SIDECAR_LIMIT)
}

/// Every byte of a small staged part, read in chunks.
fn bytes(part: &StagedFile, limit: u64) -> Result<Vec<u8>, Response> {
    if part.size > limit {
        return Err(error(400, format!("the `{}` part is {} bytes; at most {limit} are accepted", part.part, part.size)));
    }
    let mut bytes = Vec::with_capacity(part.size as usize);
    while (bytes.len() as u64) < part.size {
        let want = (part.size - bytes.len() as u64).min(READ_CHUNK) as u32;
        let chunk = staging::read(part.id, bytes.len() as u64, want)?;
        if chunk.is_empty() {
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.len() as u64 != part.size {
        return Err(error(
            500,
            format!("the staged `{}` part ended after {} of its {} bytes", part.part, bytes.len(), part.size),
        ));
    }
    Ok(bytes)
}
