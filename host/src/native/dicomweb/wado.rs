//! WADO-RS: the stored files of a study, series or instance streamed from disk as
//! `multipart/related; type="application/dicom"` (bytes as stored, no transcoding), and their
//! metadata as DICOM JSON read from each file's header (no pixel data, no bulk data URIs).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use futures::stream::{self, Stream, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{ACCEPT, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use tokio::io::AsyncReadExt;

use super::{NativeCall, path_uid};
use crate::app::App;
use crate::db::qido::Level;
use crate::db::retrieve::{self, StoredFile};
use crate::error::ApiError;
use crate::response::Body;

/// Bytes read from a file per body chunk.
const CHUNK: usize = 256 * 1024;

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
    let parts = paths(app, &files).await?;
    let boundary = boundary();
    tracing::debug!(tenant = call.tenant.name(), ?level, instances = parts.len(), "WADO retrieve");
    let body = BodyExt::boxed(StreamBody::new(multipart(parts, boundary.clone()).map(|chunk| chunk.map(Frame::data))));
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
    let parts = paths(app, &files).await?;
    let count = parts.len();
    let items = stream::iter(parts.into_iter().enumerate()).then(move |(n, (_, path))| async move {
        let json = tokio::task::spawn_blocking(move || header_json(&path))
            .await
            .map_err(|e| io::Error::other(format!("metadata task failed: {e}")))??;
        let mut chunk = Vec::with_capacity(json.len() + 2);
        chunk.push(if n == 0 { b'[' } else { b',' });
        chunk.extend_from_slice(&json);
        if n + 1 == count {
            chunk.push(b']');
        }
        Ok::<_, io::Error>(Bytes::from(chunk))
    });
    let body = BodyExt::boxed(StreamBody::new(items.map(|chunk| chunk.map(Frame::data))));
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

/// The absolute path of each file, checked to exist before anything is sent (a 500 then is an
/// answer; a file missing half way through a stream could only cut the connection).
async fn paths(app: &App, files: &[StoredFile]) -> Result<Vec<(String, PathBuf)>, ApiError> {
    let storage = app.ingest.storage();
    let mut paths = Vec::with_capacity(files.len());
    for f in files {
        let path = storage.absolute(&f.medium, &f.relative_path).map_err(|e| ApiError::Internal(e.to_string()))?;
        if tokio::fs::metadata(&path).await.is_err() {
            tracing::error!(sop = %f.sop_instance_uid, path = %path.display(), "stored file is missing");
            return Err(ApiError::Internal(format!("the file of instance `{}` is missing from storage", f.sop_instance_uid)));
        }
        paths.push((f.transfer_syntax.clone(), path));
    }
    Ok(paths)
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
    /// Sending the bytes of part `n` from this file.
    Bytes(usize, tokio::fs::File),
    /// About to send the closing delimiter.
    Close,
    Done,
}

/// The multipart body over `parts` (transfer syntax, path), read `CHUNK` bytes at a time.
fn multipart(parts: Vec<(String, PathBuf)>, boundary: String) -> impl Stream<Item = io::Result<Bytes>> + Send + Sync + 'static {
    let shared = Arc::new((parts, boundary));
    stream::unfold(Step::Part(0), move |step| {
        let shared = shared.clone();
        async move {
            let (parts, boundary) = &*shared;
            let (chunk, next) = match step {
                Step::Done => return None,
                Step::Close => (Ok(Bytes::from(format!("\r\n--{boundary}--\r\n"))), Step::Done),
                Step::Part(n) => match tokio::fs::File::open(&parts[n].1).await {
                    Ok(file) => {
                        let lead = if n == 0 { "" } else { "\r\n" };
                        let syntax = &parts[n].0;
                        let head = format!("{lead}--{boundary}\r\nContent-Type: application/dicom; transfer-syntax={syntax}\r\n\r\n");
                        (Ok(Bytes::from(head)), Step::Bytes(n, file))
                    }
                    Err(e) => (Err(e), Step::Done),
                },
                Step::Bytes(n, mut file) => {
                    let mut buffer = BytesMut::zeroed(CHUNK);
                    match file.read(&mut buffer).await {
                        Ok(0) => (Ok(Bytes::new()), if n + 1 == parts.len() { Step::Close } else { Step::Part(n + 1) }),
                        Ok(read) => {
                            buffer.truncate(read);
                            (Ok(buffer.freeze()), Step::Bytes(n, file))
                        }
                        Err(e) => (Err(e), Step::Done),
                    }
                }
            };
            if let Err(e) = &chunk {
                tracing::warn!(error = %e, "WADO stream cut short");
            }
            Some((chunk, next))
        }
    })
    .filter(|chunk| std::future::ready(!matches!(chunk, Ok(b) if b.is_empty())))
}

/// The DICOM JSON of a file's dataset up to Pixel Data, without the file meta group.
fn header_json(path: &std::path::Path) -> io::Result<Vec<u8>> {
    let object = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| io::Error::other(format!("cannot read {}: {e}", path.display())))?;
    dicom_json::to_vec(&*object).map_err(io::Error::other)
}
