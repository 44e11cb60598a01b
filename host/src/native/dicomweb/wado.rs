//! WADO-RS: the stored files of a study, series or instance streamed from their medium (disk or
//! bucket) as `multipart/related; type="application/dicom"` (bytes as stored, no transcoding),
//! and their metadata as DICOM JSON read from each file's header (no pixel data, no bulk data
//! URIs).

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
        let local = storage.local(&part.medium, &part.relative_path).await.map_err(io::Error::other)?;
        let json = tokio::task::spawn_blocking(move || header_json(local.path()))
            .await
            .map_err(|e| io::Error::other(format!("metadata task failed: {e}")))??;
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
fn multipart(storage: Storage, parts: Vec<StoredFile>, boundary: String) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
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
                        let head = format!("{lead}--{boundary}\r\nContent-Type: application/dicom; transfer-syntax={syntax}\r\n\r\n");
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

/// The DICOM JSON of a file's dataset up to Pixel Data, without the file meta group.
fn header_json(path: &std::path::Path) -> io::Result<Vec<u8>> {
    let object = OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| io::Error::other(format!("cannot read {}: {e}", path.display())))?;
    dicom_json::to_vec(&*object).map_err(io::Error::other)
}
