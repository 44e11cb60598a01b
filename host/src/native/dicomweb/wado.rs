//! WADO-RS: the stored files of a study, series or instance streamed from their medium (disk or
//! bucket) as `multipart/related; type="application/dicom"` (bytes as stored, no transcoding),
//! and their metadata as DICOM JSON read from each file's header (no pixel data, no bulk data
//! URIs); of an object in a bucket only the first bytes are fetched when they hold its header.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use futures::stream::{self, BoxStream, Stream, StreamExt};
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::{NativeCall, path_uid};
use crate::app::App;
use crate::db::qido::Level;
use crate::db::retrieve::{self, StoredFile};
use crate::error::ApiError;
use crate::response::{self, Body};
use crate::storage::Storage;

/// Serves the instances of the study, series or instance in the path, one part per file.
pub async fn instances(app: &App, call: &NativeCall, level: Level) -> Result<Response<Body>, ApiError> {
    let files = lookup(app, call, level).await?;
    let accepted = accepted_syntaxes(call)?;
    if let Some(syntaxes) = &accepted
        && let Some(f) = files.iter().find(|f| !syntaxes.contains(&f.transfer_syntax))
    {
        return Err(ApiError::NotAcceptable(format!(
            "instance `{}` is stored in transfer syntax {} and is not transcoded; ask for transfer-syntax=* or {}",
            f.sop_instance_uid, f.transfer_syntax, f.transfer_syntax
        )));
    }
    let parts = present(app, &files).await?;
    let boundary = boundary();
    tracing::debug!(tenant = call.tenant.name(), ?level, instances = parts.len(), "WADO retrieve");
    let storage = app.ingest.storage().clone();
    let body = response::stream(multipart(storage, parts, boundary.clone()));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"))
        .body(body)
        .expect("static response parts are valid"))
}

/// Serves the metadata of the study, series or instance in the path: a JSON array with one
/// dataset per instance, written as each header is read.
pub async fn metadata(app: &App, call: &NativeCall, level: Level) -> Result<Response<Body>, ApiError> {
    let files = lookup(app, call, level).await?;
    let parts = present(app, &files).await?;
    let count = parts.len();
    let storage = app.ingest.storage().clone();
    let items = stream::iter(parts.into_iter().enumerate()).then(move |(n, part)| {
        let storage = storage.clone();
        async move {
            let json = metadata_of(&storage, &part).await?;
            let mut chunk = Vec::with_capacity(json.len() + 2);
            chunk.push(if n == 0 { b'[' } else { b',' });
            chunk.extend_from_slice(&json);
            if n + 1 == count {
                chunk.push(b']');
            }
            Ok::<_, io::Error>(Bytes::from(chunk))
        }
    });
    let body = response::stream(items);
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, super::DICOM_JSON)
        .body(body)
        .expect("static response parts are valid"))
}

/// The files the path names; 404 naming what is unknown.
async fn lookup(app: &App, call: &NativeCall, level: Level) -> Result<Vec<StoredFile>, ApiError> {
    let study = path_uid(call, "study")?.ok_or_else(|| ApiError::BadRequest("the path names no study".into()))?;
    let series = path_uid(call, "series")?;
    let instance = path_uid(call, "instance")?;
    let files = retrieve::files(app.db.reader(), call.tenant.name(), study, series, instance)
        .await
        .map_err(|e| ApiError::from(crate::db::DbError::from(e)))?;
    if files.is_empty() {
        return Err(ApiError::NotFoundMessage(match level {
            Level::Study => format!("no study `{study}`"),
            Level::Series => format!("no series `{}` in study `{study}`", series.unwrap_or_default()),
            Level::Instance => format!(
                "no instance `{}` in series `{}` of study `{study}`",
                instance.unwrap_or_default(),
                series.unwrap_or_default()
            ),
        }));
    }
    Ok(files)
}

/// Files looked up at once (in a bucket, each is a request).
const CHECKS_IN_FLIGHT: usize = 16;

/// The files, each checked to be on its medium before anything is sent (a 500 then is an
/// answer; a file missing half way through a stream could only cut the connection).
async fn present(app: &App, files: &[StoredFile]) -> Result<Vec<StoredFile>, ApiError> {
    let storage = app.ingest.storage().clone();
    let looked_up = move |f: StoredFile| {
        let storage = storage.clone();
        async move {
            let size = storage.size(&f.medium, &f.relative_path).await;
            (f, size)
        }
    };
    let mut checks = stream::iter(files.to_vec()).map(looked_up).buffered(CHECKS_IN_FLIGHT);
    let mut present = Vec::with_capacity(files.len());
    while let Some((f, size)) = checks.next().await {
        match size {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::error!(sop = %f.sop_instance_uid, medium = %f.medium, path = %f.relative_path, "stored file is missing");
                return Err(ApiError::Internal(format!("the file of instance `{}` is missing from storage", f.sop_instance_uid)));
            }
            Err(e) => {
                tracing::error!(sop = %f.sop_instance_uid, error = %e, "stored file cannot be reached");
                return Err(ApiError::Internal(format!("the file of instance `{}` cannot be read: {e}", f.sop_instance_uid)));
            }
        }
        present.push(f);
    }
    Ok(present)
}

/// The transfer syntaxes the `Accept` header allows, `None` meaning any (as stored). 406 when
/// it allows no `multipart/related` of `application/dicom` at all.
fn accepted_syntaxes(call: &NativeCall) -> Result<Option<Vec<String>>, ApiError> {
    let values: Vec<&str> = call.request.headers().get_all(ACCEPT).iter().filter_map(|v| v.to_str().ok()).collect();
    if values.is_empty() {
        return Ok(None);
    }
    let mut syntaxes = Vec::new();
    let mut acceptable = false;
    for range in values.iter().flat_map(|v| split_outside_quotes(v, ',')) {
        let mut params = split_outside_quotes(&range, ';').into_iter();
        let media = params.next().unwrap_or_default().to_ascii_lowercase();
        let (mut kind, mut syntax) = (None, None);
        for param in params {
            if let Some((k, v)) = param.split_once('=') {
                let v = v.trim().trim_matches('"').to_owned();
                match k.trim().to_ascii_lowercase().as_str() {
                    "type" => kind = Some(v.to_ascii_lowercase()),
                    "transfer-syntax" => syntax = Some(v),
                    _ => {}
                }
            }
        }
        let dicom = kind.as_deref().is_none_or(|k| k == "application/dicom");
        if matches!(media.as_str(), "*/*" | "multipart/*") || (media == "multipart/related" && dicom) {
            acceptable = true;
            match syntax {
                Some(s) if s != "*" => syntaxes.push(s),
                _ => return Ok(None),
            }
        }
    }
    if !acceptable {
        return Err(ApiError::NotAcceptable(format!(
            "cannot answer `Accept: {}`: instances are sent as multipart/related; type=\"application/dicom\"",
            values.join(", ")
        )));
    }
    Ok(Some(syntaxes))
}

/// Splits on `separator` except inside double quotes; trims the pieces.
fn split_outside_quotes(text: &str, separator: char) -> Vec<String> {
    let (mut pieces, mut current, mut quoted) = (Vec::new(), String::new(), false);
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c == separator && !quoted => pieces.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    pieces.push(current);
    pieces.into_iter().map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect()
}

/// A multipart boundary that will not occur in the files (160 random-ish bits).
fn boundary() -> String {
    use sha1::{Digest, Sha1};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hash = Sha1::new();
    hash.update(std::process::id().to_le_bytes());
    hash.update(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_le_bytes());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    hash.update(now.to_le_bytes());
    format!("wasmpacs-{}", hex::encode(hash.finalize()))
}

/// Where the multipart stream is.
enum Step {
    /// About to send the headers of part `n`.
    Part(usize),
    /// Sending the bytes of part `n`.
    Bytes(usize, BoxStream<'static, io::Result<Bytes>>),
    /// About to send the closing delimiter.
    Close,
    Done,
}

/// The multipart body over `parts`, each file read from its medium a chunk at a time.
fn multipart(
    storage: Storage,
    parts: Vec<StoredFile>,
    boundary: String,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let shared = Arc::new((storage, parts, boundary));
    stream::unfold(Step::Part(0), move |step| {
        let shared = shared.clone();
        async move {
            let (storage, parts, boundary) = &*shared;
            let (chunk, next) = match step {
                Step::Done => return None,
                Step::Close => (Ok(Bytes::from(format!("\r\n--{boundary}--\r\n"))), Step::Done),
                Step::Part(n) => match storage.read(&parts[n].medium, &parts[n].relative_path).await {
                    Ok((_, bytes)) => {
                        let lead = if n == 0 { "" } else { "\r\n" };
                        let syntax = &parts[n].transfer_syntax;
                        let head =
                            format!("{lead}--{boundary}\r\nContent-Type: application/dicom; transfer-syntax={syntax}\r\n\r\n");
                        (Ok(Bytes::from(head)), Step::Bytes(n, bytes))
                    }
                    Err(e) => (Err(io::Error::other(e)), Step::Done),
                },
                Step::Bytes(n, mut bytes) => match bytes.next().await {
                    None => (Ok(Bytes::new()), if n + 1 == parts.len() { Step::Close } else { Step::Part(n + 1) }),
                    Some(Ok(chunk)) => (Ok(chunk), Step::Bytes(n, bytes)),
                    Some(Err(e)) => (Err(e), Step::Done),
                },
            };
            if let Err(e) = &chunk {
                tracing::warn!(error = %e, "WADO stream cut short");
            }
            Some((chunk, next))
        }
    })
    .filter(|chunk| std::future::ready(!matches!(chunk, Ok(b) if b.is_empty())))
}

/// Bytes of an object in a bucket fetched to read its metadata: the whole object is fetched only
/// when its header goes on past them.
const HEADER_PREFIX: u64 = 256 * 1024;

/// The DICOM JSON of a stored file's header: read from the file on a medium; from the first
/// [`HEADER_PREFIX`] bytes of an object in a bucket when they hold the whole header, else from the
/// whole object.
async fn metadata_of(storage: &Storage, part: &StoredFile) -> io::Result<Vec<u8>> {
    let prefix = storage.local_prefix(&part.medium, &part.relative_path, Some(HEADER_PREFIX)).await.map_err(io::Error::other)?;
    let read = blocking(
        move || if prefix.is_whole() { header_json(prefix.path()).map(Some) } else { header_json_within(prefix.path()) },
    );
    if let Some(json) = read.await? {
        return Ok(json);
    }
    let local = storage.local(&part.medium, &part.relative_path).await.map_err(io::Error::other)?;
    blocking(move || header_json(local.path())).await
}

async fn blocking<T: Send + 'static>(job: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(job).await.map_err(|e| io::Error::other(format!("metadata task failed: {e}")))?
}

/// The DICOM JSON of the header in `path`, the first bytes of a file, when it is all there: the
/// reading stopped at Pixel Data before the end of those bytes. `None` when it may go on past
/// them: the reading was cut, or ran to their end (a prefix can end right between two elements,
/// which reads as a header that ends there).
fn header_json_within(path: &std::path::Path) -> io::Result<Option<Vec<u8>>> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut counted = Counted { inner: file, read: 0 };
    let object = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .read_preamble(dicom_object::file::ReadPreamble::Auto)
        .from_reader(&mut counted);
    match object {
        Ok(object) if counted.read < len => Ok(Some(dicom_json::to_vec(&*object).map_err(io::Error::other)?)),
        _ => Ok(None),
    }
}

/// A reader that counts the bytes taken from it.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: io::Read> io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// The DICOM JSON of a file's dataset up to Pixel Data, without the file meta group.
fn header_json(path: &std::path::Path) -> io::Result<Vec<u8>> {
    let object = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| io::Error::other(format!("cannot read {}: {e}", path.display())))?;
    dicom_json::to_vec(&*object).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

    /// A CT-like file whose header ends with a long private text (so that cuts fall between and
    /// inside elements) before 300 kB of pixel data.
    fn sample(dir: &std::path::Path) -> std::path::PathBuf {
        let mut object = InMemDicomObject::new_empty();
        let mut put = |tag, vr, value: PrimitiveValue| object.put(DataElement::new(tag, vr, value));
        put(tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2".into());
        put(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4.5".into());
        put(tags::PATIENT_NAME, VR::PN, "DOE^JANE".into());
        put(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3".into());
        put(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.4".into());
        put(tags::ROWS, VR::US, PrimitiveValue::from(300_u16));
        put(tags::COLUMNS, VR::US, PrimitiveValue::from(500_u16));
        put(dicom_core::Tag(0x0029, 0x0010), VR::LO, "WASMPACS TEST".into());
        put(dicom_core::Tag(0x0029, 0x1010), VR::UT, "x".repeat(3000).into());
        put(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(vec![7; 150_000].into()));
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.2")
            .media_storage_sop_instance_uid("1.2.3.4.5")
            .transfer_syntax("1.2.840.10008.1.2.1");
        let path = dir.join("ct.dcm");
        object.with_meta(meta).unwrap().write_to_file(&path).unwrap();
        path
    }

    #[test]
    fn a_prefix_answers_the_whole_header_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        let whole = header_json(&path).unwrap();
        let cut = dir.path().join("cut.dcm");
        let mut answered = 0;
        // Every cut up to well past the start of Pixel Data (byte by byte through the header).
        for len in (132..5_000).chain((5_000..bytes.len() - 1).step_by(4_096)) {
            std::fs::write(&cut, &bytes[..len]).unwrap();
            if let Some(json) = header_json_within(&cut).unwrap() {
                assert!(
                    json == whole,
                    "a prefix of {len} bytes read as {} of the header's {} bytes of JSON",
                    json.len(),
                    whole.len()
                );
                answered += 1;
            }
        }
        assert!(answered > 50, "prefixes holding the header are read from: {answered}");
        std::fs::write(&cut, &bytes[..HEADER_PREFIX as usize]).unwrap();
        assert_eq!(header_json_within(&cut).unwrap(), Some(whole), "the prefix fetched from a bucket holds it");
    }
}
