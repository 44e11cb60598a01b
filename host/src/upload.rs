//! Multipart uploads streamed to staging files on the default medium: each part is written as
//! it arrives, hashed (SHA-1) and counted on the fly, and synced before it is used. No part is
//! held in memory, however large (a whole slide, a MIRAX archive).

use bytes::Bytes;

use crate::capabilities::StagedFile;
use crate::error::ApiError;
use crate::storage::{StagedWriter, StagingFile, Storage};

/// Bytes gathered before one write on a blocking thread.
const WRITE_BATCH: usize = 1024 * 1024;

/// Why a part could not be staged.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The request body itself failed (malformed, cut): the request cannot go on.
    #[error("the multipart body cannot be read: {0}")]
    Body(#[from] multer::Error),
    /// The staging file could not be written.
    #[error("cannot stage the upload: {0}")]
    Storage(String),
}

/// Streams one part to a new staging file. Once it is synced, `complete` runs on the same
/// blocking thread with the file, its length and SHA-1 (e.g. to read a DICOM header while the
/// file is hot). A failure removes the staging file.
pub async fn stage_field<T: Send + 'static>(
    storage: &Storage,
    field: &mut multer::Field<'_>,
    complete: impl FnOnce(StagingFile, u64, String) -> T + Send + 'static,
) -> Result<T, UploadError> {
    let storage = storage.clone();
    let (file, writer) = blocking(move || {
        let file = storage.stage(storage.default_medium()).map_err(|e| e.to_string())?;
        let writer = file.writer().map_err(|e| e.to_string())?;
        Ok::<_, String>((file, writer))
    })
    .await?;
    let (mut writer, mut pending, mut pending_len) = (writer, Vec::<Bytes>::new(), 0);
    while let Some(chunk) = field.chunk().await? {
        pending_len += chunk.len();
        pending.push(chunk);
        if pending_len >= WRITE_BATCH {
            writer = write(writer, std::mem::take(&mut pending)).await?;
            pending_len = 0;
        }
    }
    let writer = write(writer, pending).await?;
    blocking(move || {
        let (size, sha1) = writer.finish().map_err(|e| e.to_string())?;
        Ok(complete(file, size, sha1))
    })
    .await
}

async fn write(mut writer: StagedWriter, chunks: Vec<Bytes>) -> Result<StagedWriter, UploadError> {
    blocking(move || {
        for chunk in &chunks {
            writer.write_all(chunk).map_err(|e| e.to_string())?;
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

/// Streams every part of a form to staging files, with its field name, file name and type.
pub async fn stage_form(storage: &Storage, body: hyper::body::Incoming, boundary: String) -> Result<StagedForm, ApiError> {
    use http_body_util::BodyExt;
    let mut multipart = multer::Multipart::new(body.into_data_stream(), boundary);
    let mut form = StagedForm { files: Vec::new(), _guards: Vec::new() };
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        if form.files.len() == MAX_FORM_PARTS {
            return Err(ApiError::BadRequest(format!("a form may have at most {MAX_FORM_PARTS} parts")));
        }
        let part = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(|m| m.essence_str().to_owned());
        let (file, size, sha1) = stage_field(storage, &mut field, |file, size, sha1| (file, size, sha1)).await.map_err(|e| match e {
            UploadError::Body(e) => malformed(e),
            UploadError::Storage(e) => {
                tracing::error!(error = %e, "cannot stage an uploaded part");
                ApiError::Internal("the upload cannot be stored".into())
            }
        })?;
        let id = form.files.len() as u32 + 1;
        tracing::debug!(part, file_name = ?file_name, size, "form part staged");
        form.files.push(StagedFile { id, part, file_name, content_type, size, sha1, path: file.path().to_owned() });
        form._guards.push(file);
    }
    Ok(form)
}

fn malformed(e: multer::Error) -> ApiError {
    ApiError::BadRequest(format!("the multipart/form-data body cannot be read: {e}"))
}
