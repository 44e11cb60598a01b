//! `GET wholeslide?barcode=`: the slide whose container identifier is the barcode, streamed from
//! its medium (disk or bucket) with its file name in `Content-Disposition`. A non-DICOM slide (stored through
//! `pathoRsListener`) is answered with its file as sent: the WSI file or the MIRAX ZIP archive.
//! A DICOM slide is answered with its baseline, the VOLUME instance of the highest resolution,
//! as `application/dicom`.

use dicom_dictionary_std::tags;
use dicom_object::OpenFileOptions;
use hyper::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::single_param;
use crate::app::App;
use crate::auth::Tenant;
use crate::db::query::{self, StoredFile};
use crate::db::{self, slides::SlideFile};
use crate::error::ApiError;
use crate::response::{self, Body};
use crate::storage::Storage;

/// Bytes fetched from a bucket to read a slide instance's header: the tags before Pixel Data.
const HEADER_BYTES: u64 = 8 << 20;

pub async fn serve(app: &App, tenant: &Tenant, query: &[(String, String)]) -> Result<Response<Body>, ApiError> {
    let barcode = single_param(query, "barcode")?
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .ok_or_else(|| ApiError::BadRequest("parameter `barcode` is required and must not be empty".into()))?;
    let files = query::slide_files(app.db.reader(), tenant.name(), barcode)
        .await
        .map_err(|e| ApiError::Internal(format!("database error: {e}")))?;
    let mut slides: Vec<i64> = files.iter().map(|(series, _)| *series).collect();
    slides.dedup();
    match slides.len() {
        0 => return Err(ApiError::NotFoundMessage(format!("no whole slide has the barcode `{barcode}`"))),
        1 => {}
        n => return Err(ApiError::Conflict(format!("{n} whole slides have the barcode `{barcode}`"))),
    }
    let storage = app.ingest.storage();
    let series_key = slides[0];
    if let Some(slide) = db::slides::of_series(app.db.reader(), series_key)
        .await
        .map_err(|e| ApiError::Internal(format!("database error: {e}")))?
    {
        return serve_file(app, tenant, barcode, slide).await;
    }
    // The baseline: the largest total pixel matrix (or frame, for an image that has none) among
    // VOLUME images; LABEL, OVERVIEW and THUMBNAIL images are not levels. An instance whose
    // header cannot be read is passed over.
    let mut best: Option<((bool, u64), StoredFile)> = None;
    for (_, file) in files {
        let Some(measured) = measure(storage, &file).await else {
            tracing::warn!(sop = %file.sop_instance_uid, "slide instance header cannot be read");
            continue;
        };
        if best.as_ref().is_none_or(|(best, _)| measured > *best) {
            best = Some((measured, file));
        }
    }
    let (_, file) = best.ok_or_else(|| ApiError::Internal("no instance of the slide can be read".into()))?;
    tracing::info!(tenant = tenant.name(), barcode, sop = %file.sop_instance_uid, "whole slide served");
    attachment_response(app, &file.medium, &file.file_path, "application/dicom", &format!("{}.dcm", file.sop_instance_uid)).await
}

/// Streams a non-DICOM slide's file as it was sent.
async fn serve_file(app: &App, tenant: &Tenant, barcode: &str, slide: SlideFile) -> Result<Response<Body>, ApiError> {
    tracing::info!(tenant = tenant.name(), barcode, file = %slide.file_name, bytes = slide.size, "whole slide served");
    attachment_response(app, &slide.medium, &slide.file_path, slide.media_type(), &slide.file_name).await
}

/// The stored file `relative` on `medium`, streamed as an attachment named `file_name`.
async fn attachment_response(
    app: &App,
    medium: &str,
    relative: &str,
    content_type: &str,
    file_name: &str,
) -> Result<Response<Body>, ApiError> {
    let (length, bytes) = app.ingest.storage().read(medium, relative).await.map_err(|e| {
        tracing::error!(medium, path = relative, error = %e, "stored slide file cannot be read");
        ApiError::Internal(format!("the slide file `{file_name}` cannot be read"))
    })?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, content_type)
        .header(CONTENT_LENGTH, length)
        .header(CONTENT_DISPOSITION, attachment(file_name))
        .body(response::stream(bytes))
        .expect("checked response parts are valid"))
}

/// `Content-Disposition` naming `file_name`: an ASCII `filename` (quotes, backslashes, controls
/// and non-ASCII replaced by `_`) and, for a name that is not plain ASCII, the exact name as
/// `filename*` (RFC 6266, UTF-8 percent-encoded).
fn attachment(file_name: &str) -> String {
    let plain: String =
        file_name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    if plain == file_name {
        return format!("attachment; filename=\"{plain}\"");
    }
    let mut encoded = String::with_capacity(file_name.len() * 3);
    for byte in file_name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}")
}

/// Whether a slide instance is a level and its area, from its header: read from the first
/// [`HEADER_BYTES`] of a file in a bucket, or from the whole file when its header is longer.
async fn measure(storage: &Storage, file: &StoredFile) -> Option<(bool, u64)> {
    for first in [Some(HEADER_BYTES), None] {
        let local = match storage.local_prefix(&file.medium, &file.file_path, first).await {
            Ok(local) => local,
            Err(e) => {
                tracing::warn!(sop = %file.sop_instance_uid, error = %e, "slide instance cannot be read");
                return None;
            }
        };
        let whole = local.is_whole();
        let measured = tokio::task::spawn_blocking(move || level_and_area(local.path(), !whole)).await.ok().flatten();
        if measured.is_some() || whole {
            return measured;
        }
    }
    None
}

/// Whether the image at `path` is a level (not a LABEL, OVERVIEW or THUMBNAIL) and its total
/// pixel matrix (or frame) area. From the first bytes of a file only (`partial`), a header
/// without a total pixel matrix may be cut short and counts as unread. Blocking.
fn level_and_area(path: &std::path::Path, partial: bool) -> Option<(bool, u64)> {
    let object = OpenFileOptions::new().read_until(tags::PIXEL_DATA).open_file(path).ok()?;
    let number = |tag| object.get(tag).and_then(|e| e.to_int::<u64>().ok());
    let area = match (number(tags::TOTAL_PIXEL_MATRIX_COLUMNS), number(tags::TOTAL_PIXEL_MATRIX_ROWS)) {
        (Some(columns), Some(rows)) => columns * rows,
        _ if partial => return None,
        _ => number(tags::COLUMNS).unwrap_or(0) * number(tags::ROWS).unwrap_or(0),
    };
    let image_type = object.get(tags::IMAGE_TYPE).and_then(|e| e.to_multi_str().ok().map(|v| v.to_vec())).unwrap_or_default();
    let level = !image_type.iter().any(|t| matches!(t.trim(), "LABEL" | "OVERVIEW" | "THUMBNAIL"));
    Some((level, area))
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_are_quoted_safely() {
        assert_eq!(super::attachment("I23-00102-A-1-1.svs"), "attachment; filename=\"I23-00102-A-1-1.svs\"");
        assert_eq!(super::attachment("a\"b\r\n.svs"), "attachment; filename=\"a_b__.svs\"; filename*=UTF-8''a%22b%0D%0A.svs");
        assert_eq!(
            super::attachment("vetrino è.svs"),
            "attachment; filename=\"vetrino _.svs\"; filename*=UTF-8''vetrino%20%C3%A8.svs"
        );
    }
}
