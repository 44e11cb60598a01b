//! Multipart uploads streamed to staging files on the default medium: each part is written as
//! it arrives, digested (SHA-1 for forms, as the seed's `fileHash`; XXH3-128 for DICOM instances)
//! and counted on the fly, and synced before it is used. No part is held in memory, however
//! large (a whole slide, a MIRAX archive).

use bytes::Bytes;

use crate::capabilities::StagedFile;
use crate::error::ApiError;
use crate::storage::{Algorithm, StagedWriter, StagingFile, Storage};

/// Bytes gathered before one trip to a blocking thread to write them.
const WRITE_BATCH: usize = 1024 * 1024;

/// Largest single write to a staging file. A body chunk can be hundreds of KiB, and the kernel
/// takes page-cache memory in blocks the size of a write: written whole, STOW-RS parts spent a
/// third of all CPU time in the copy into the page cache (on a virtual machine, where large
/// free blocks go back to the host and cost far more to fill again); written in pieces, the
/// copy vanished from the profile and the server's CPU time per instance halved. C-STORE's
/// writes (a PDU's data, at most the PDU length) showed no such cost in the profile, and took
/// more CPU time when split, so they are left whole.
const WRITE_PIECE: usize = 32 * 1024;

/// Why a part could not be staged.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The request body itself failed (malformed, cut): the request cannot go on.
    #[error("the multipart body cannot be read: {0}")]
    Body(#[from] multer::Error),
    /// The staging file could not be written.
    #[error("cannot stage the upload: {0}")]
    Storage(String),
    /// The part is larger than it may be.
    #[error("the part is larger than {0} bytes")]
    TooLarge(u64),
}

/// Streams one part of at most `limit` bytes to a new staging file, digested with `algorithm`.
/// Once it is synced, `complete` runs on the same blocking thread with the file, its length and
/// digest (e.g. to read a DICOM header while the file is hot). A failure removes the staging file.
pub async fn stage_field<T: Send + 'static>(
    storage: &Storage,
    field: &mut multer::Field<'_>,
    limit: u64,
    algorithm: Algorithm,
    complete: impl FnOnce(StagingFile, u64, String) -> T + Send + 'static,
) -> Result<T, UploadError> {
    write_field(storage, field, limit, algorithm).await?.finish(complete).await
}

/// Streams one part of at most `limit` bytes to a new staging file, digested with `algorithm`,
/// and leaves it to be synced ([`WrittenPart::finish`]), so that a caller may read the next part
/// meanwhile. A failure removes the staging file.
pub async fn write_field(
    storage: &Storage,
    field: &mut multer::Field<'_>,
    limit: u64,
    algorithm: Algorithm,
) -> Result<WrittenPart, UploadError> {
    let storage = storage.clone();
    let (file, writer) = blocking(move || {
        let mut file = storage.stage(storage.default_medium()).map_err(|e| e.to_string())?;
        let writer = file.writer(algorithm).map_err(|e| e.to_string())?;
        Ok::<_, String>((file, writer))
    })
    .await?;
    let (mut writer, mut pending, mut pending_len, mut total) = (writer, Vec::<Bytes>::new(), 0, 0u64);
    while let Some(chunk) = field.chunk().await? {
        total += chunk.len() as u64;
        if total > limit {
            return Err(UploadError::TooLarge(limit));
        }
        pending_len += chunk.len();
        pending.push(chunk);
        if pending_len >= WRITE_BATCH {
            writer = write(writer, std::mem::take(&mut pending)).await?;
            pending_len = 0;
        }
    }
    let writer = write(writer, pending).await?;
    Ok(WrittenPart { file, writer })
}

/// A part written whole to its staging file, not synced yet; dropped, the file is removed.
pub struct WrittenPart {
    file: StagingFile,
    writer: StagedWriter,
}

impl WrittenPart {
    /// Syncs the file on a blocking thread, then runs `complete` there with the file, its length
    /// and digest, while the file's pages are cached. A failure removes the staging file.
    pub async fn finish<T: Send + 'static>(
        self,
        complete: impl FnOnce(StagingFile, u64, String) -> T + Send + 'static,
    ) -> Result<T, UploadError> {
        let Self { file, writer } = self;
        blocking(move || writer.finish_then(|size, digest| complete(file, size, digest)).map_err(|e| e.to_string())).await
    }
}

async fn write(mut writer: StagedWriter, chunks: Vec<Bytes>) -> Result<StagedWriter, UploadError> {
    blocking(move || {
        for piece in chunks.iter().flat_map(|chunk| chunk.chunks(WRITE_PIECE)) {
            writer.write_all(piece).map_err(|e| e.to_string())?;
        }
        Ok(writer)
    })
    .await
}

async fn blocking<T: Send + 'static>(job: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, UploadError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| UploadError::Storage(format!("blocking task failed: {e}")))?
        .map_err(UploadError::Storage)
}

/// Parts of a `multipart/form-data` body more than which a request is refused.
const MAX_FORM_PARTS: usize = 16;

/// Largest form field sent without a file name (JSON metadata, a hash, a length).
const MAX_FIELD_BYTES: u64 = 16 << 20;

/// Every part of a `multipart/form-data` body, staged for a plugin: the files it may read or
/// store (see the `staging` capability). Files still here when the form is dropped are removed;
/// a file a plugin placed in the archive has moved away already.
pub struct StagedForm {
    pub files: Vec<StagedFile>,
    _guards: Vec<StagingFile>,
}

/// The boundary of a `multipart/form-data` Content-Type, or `None` for any other body.
pub fn form_boundary(content_type: Option<&str>) -> Option<String> {
    let content_type = content_type?;
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    multer::parse_boundary(content_type).ok()
}

/// Streams every part of a form to staging files, with its field name, file name and type: at
/// most `max_bytes` in all, and [`MAX_FIELD_BYTES`] for a part without a file name (413 beyond).
pub async fn stage_form(
    storage: &Storage,
    body: crate::net::body::RequestBody,
    boundary: String,
    max_bytes: u64,
) -> Result<StagedForm, ApiError> {
    use http_body_util::BodyExt;
    let constraints = multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(max_bytes));
    let mut multipart = multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut form = StagedForm { files: Vec::new(), _guards: Vec::new() };
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        if form.files.len() == MAX_FORM_PARTS {
            drain(&mut multipart, field).await;
            return Err(ApiError::BadRequest(format!("a form may have at most {MAX_FORM_PARTS} parts")));
        }
        let part = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(|m| m.essence_str().to_owned());
        let limit = if file_name.is_some() { max_bytes } else { MAX_FIELD_BYTES };
        let (file, size, sha1) =
            match stage_field(storage, &mut field, limit, Algorithm::Sha1, |file, size, sha1| (file, size, sha1)).await {
                Ok(staged) => staged,
                Err(e) => {
                    let refusal = match e {
                        UploadError::Body(multer::Error::StreamSizeExceeded { .. }) => ApiError::PayloadTooLarge(max_bytes),
                        UploadError::TooLarge(limit) => ApiError::PayloadTooLarge(limit),
                        UploadError::Body(e) => return Err(malformed(e)),
                        UploadError::Storage(e) => {
                            tracing::error!(error = %e, "cannot stage an uploaded part");
                            ApiError::Internal("the upload cannot be stored".into())
                        }
                    };
                    drain(&mut multipart, field).await;
                    return Err(refusal);
                }
            };
        let id = form.files.len() as u32 + 1;
        tracing::debug!(part, file_name = ?file_name, size, "form part staged");
        form.files.push(StagedFile { id, part, file_name, content_type, size, sha1, path: file.path().to_owned() });
        form._guards.push(file);
    }
    Ok(form)
}

/// Most bytes read and dropped after a form is refused, so that a client still sending the
/// little that is left can read the answer rather than see the connection reset under it.
const DRAIN_BYTES: usize = 4 << 20;

/// Reads what is left of a refused form (the rest of `field`, then the other parts), up to
/// [`DRAIN_BYTES`]; beyond that the connection is closed after the answer.
async fn drain<'r>(multipart: &mut multer::Multipart<'r>, mut field: multer::Field<'r>) {
    let mut budget = DRAIN_BYTES;
    loop {
        while let Ok(Some(chunk)) = field.chunk().await {
            budget = budget.saturating_sub(chunk.len());
            if budget == 0 {
                return;
            }
        }
        drop(field);
        match multipart.next_field().await {
            Ok(Some(next)) => field = next,
            _ => return,
        }
    }
}

fn malformed(e: multer::Error) -> ApiError {
    ApiError::BadRequest(format!("the multipart/form-data body cannot be read: {e}"))
}
