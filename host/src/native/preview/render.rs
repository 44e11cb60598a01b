//! Rendering a stored instance's first frame as a JPEG thumbnail: decoded with dicom-pixeldata
//! (every transfer syntax it has a codec for), monochrome through the stored VOI window or a
//! computed min-max one, colour (RGB, YBR, palette) as RGB, scaled down to a bounded size with
//! the aspect ratio kept. CPU-bound: call it from a blocking task.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::image::codecs::jpeg::JpegEncoder;
use dicom_pixeldata::image::{DynamicImage, GrayImage, RgbImage};
use dicom_pixeldata::{
    ConvertOptions, DecodedPixelData, ModalityLutOption, PhotometricInterpretation, PixelDecoder, PixelRepresentation,
    VoiLutOption,
};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

/// Why an instance could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the stored file cannot be read: {0}")]
    Unreadable(String),
    #[error("instance `{0}` has no pixel data to preview")]
    NoPixelData(String),
    #[error("instance `{sop}` is encoded in transfer syntax {ts}, which this server cannot decode")]
    UnsupportedCodec { sop: String, ts: String },
    #[error("instance `{sop}` uses a pixel encoding this server cannot decode: {reason}")]
    UnsupportedEncoding { sop: String, reason: String },
    #[error("instance `{sop}` cannot be rendered: {reason}")]
    Undecodable { sop: String, reason: String },
}

/// How thumbnails are made.
#[derive(Debug, Clone, Copy)]
pub struct Thumbnail {
    /// Longest side in pixels; smaller images are not enlarged.
    pub max_side: u32,
    /// JPEG quality, 1 to 100.
    pub quality: u8,
}

impl Thumbnail {
    /// The JPEG thumbnail of the first frame of the Part-10 file at `path` (instance `sop`).
    pub fn render(&self, path: &Path, sop: &str) -> Result<Vec<u8>, RenderError> {
        let object = dicom_object::open_file(path).map_err(|e| RenderError::Unreadable(e.to_string()))?;
        let ts_uid = object.meta().transfer_syntax().trim_end_matches(['\0', ' ']).to_owned();
        if object.get(tags::PIXEL_DATA).is_none() {
            return Err(RenderError::NoPixelData(sop.to_owned()));
        }
        let decodable = TransferSyntaxRegistry.get(&ts_uid).is_some_and(|ts| ts.can_decode_all());
        if !decodable {
            let name = TransferSyntaxRegistry.get(&ts_uid).map(|ts| ts.name().to_owned());
            let ts = match name {
                Some(name) => format!("{ts_uid} ({name})"),
                None => ts_uid,
            };
            return Err(RenderError::UnsupportedCodec { sop: sop.to_owned(), ts });
        }
        let undecodable = |reason: String| RenderError::Undecodable { sop: sop.to_owned(), reason };
        let image = first_frame(&object).map_err(|reason| {
            // A codec that lacks a feature (e.g. 12-bit JPEG) is not a broken file.
            if reason.to_ascii_lowercase().contains("unsupported") {
                RenderError::UnsupportedEncoding { sop: sop.to_owned(), reason }
            } else {
                undecodable(reason)
            }
        })?;
        let image =
            if image.width().max(image.height()) > self.max_side { image.thumbnail(self.max_side, self.max_side) } else { image };
        // JPEG carries 8-bit grey or RGB.
        let image = match image {
            DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => image,
            DynamicImage::ImageLuma16(_) | DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLumaA16(_) => {
                DynamicImage::ImageLuma8(image.to_luma8())
            }
            other => DynamicImage::ImageRgb8(other.to_rgb8()),
        };
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, self.quality.clamp(1, 100))
            .encode_image(&image)
            .map_err(|e| undecodable(format!("JPEG encoding failed: {e}")))?;
        Ok(jpeg)
    }
}

/// Lossy JPEG labelled RGB whose stream has neither a JFIF nor an Adobe marker: the components
/// are R, G, B as the label says (PS3.5 8.2.1), but a JPEG decoder left to itself assumes YCbCr
/// and turns the picture magenta. Decodes the first frame without a colour transform; `None`
/// when this case does not apply.
fn rgb_jpeg_as_labelled(object: &DefaultDicomObject) -> Option<DynamicImage> {
    let ts = object.meta().transfer_syntax().trim_end_matches(['\0', ' ']);
    if !matches!(ts, "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51") {
        return None;
    }
    let pixel_data = object.get(tags::PIXEL_DATA)?;
    let fragments = pixel_data.fragments()?;
    let frames: u32 = dicom_object_text(object, tags::NUMBER_OF_FRAMES).and_then(|n| n.parse().ok()).unwrap_or(1);
    // One frame: all fragments are its stream; several: the first fragment starts the first.
    let stream: Vec<u8> = if frames <= 1 { fragments.concat() } else { fragments.first()?.clone() };
    if has_colour_marker(&stream) {
        return None;
    }
    let mut decoder = jpeg_decoder::Decoder::new(std::io::Cursor::new(&stream));
    decoder.set_color_transform(jpeg_decoder::ColorTransform::None);
    let pixels = decoder.decode().ok()?;
    let info = decoder.info()?;
    if info.pixel_format != jpeg_decoder::PixelFormat::RGB24 {
        return None;
    }
    image::RgbImage::from_raw(u32::from(info.width), u32::from(info.height), pixels).map(DynamicImage::ImageRgb8)
}

/// True when a JPEG stream declares its colour space itself (an APP0 JFIF or APP14 Adobe segment
/// before the image data).
fn has_colour_marker(stream: &[u8]) -> bool {
    let mut at = 2; // after SOI
    while at + 4 <= stream.len() && stream[at] == 0xFF {
        let marker = stream[at + 1];
        if marker == 0xDA {
            return false; // start of scan: no more header segments
        }
        let length = u16::from_be_bytes([stream[at + 2], stream[at + 3]]) as usize;
        let payload = &stream[(at + 4).min(stream.len())..(at + 2 + length).min(stream.len())];
        if (marker == 0xE0 && payload.starts_with(b"JFIF")) || (marker == 0xEE && payload.starts_with(b"Adobe")) {
            return true;
        }
        at += 2 + length;
    }
    false
}

/// The first frame as an 8-bit image.
fn first_frame(object: &DefaultDicomObject) -> Result<DynamicImage, String> {
    let decoded = object.decode_pixel_data_frame(0).map_err(|e| chain(&e))?;
    let photometric = dicom_object_text(object, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    if photometric == "PALETTE COLOR" {
        let options = ConvertOptions::new().with_modality_lut(ModalityLutOption::None);
        let indices: Vec<u16> = decoded.to_vec_frame_with_options(0, &options).map_err(|e| e.to_string())?;
        return palette_image(object, &indices, decoded.columns(), decoded.rows());
    }
    if decoded.samples_per_pixel() == 1 && decoded.bits_allocated() == 32 {
        return monochrome_32(&decoded);
    }
    if photometric == "RGB"
        && decoded.samples_per_pixel() == 3
        && let Some(image) = rgb_jpeg_as_labelled(object)
    {
        return Ok(image);
    }
    let options = ConvertOptions::new().with_voi_lut(VoiLutOption::First).force_8bit();
    decoded.to_dynamic_image_with_options(0, &options).map_err(|e| e.to_string())
}

/// An error with its causes, `outer: inner: ...`.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A 32-bit monochrome frame (e.g. RT dose), which dicom-pixeldata does not turn into images:
/// rescaled, then through the stored window or a min-max one.
fn monochrome_32(decoded: &DecodedPixelData<'_>) -> Result<DynamicImage, String> {
    let bytes = decoded.frame_data(0).map_err(|e| e.to_string())?;
    let signed = decoded.pixel_representation() == PixelRepresentation::Signed;
    let rescale = decoded.rescale().ok().and_then(|r| r.first().copied());
    let (slope, intercept) = rescale.map(|r| (r.slope, r.intercept)).unwrap_or((1.0, 0.0));
    let values: Vec<f64> = bytes
        .chunks_exact(4)
        .map(|b| {
            let raw = [b[0], b[1], b[2], b[3]];
            let v = if signed { f64::from(i32::from_le_bytes(raw)) } else { f64::from(u32::from_le_bytes(raw)) };
            v * slope + intercept
        })
        .collect();
    let window = decoded.window().ok().flatten().and_then(|w| w.first().copied()).filter(|w| w.width > 1.0);
    let (low, high) = match window {
        Some(w) => (w.center - 0.5 - (w.width - 1.0) / 2.0, w.center - 0.5 + (w.width - 1.0) / 2.0),
        None => values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v))),
    };
    let span = (high - low).max(f64::EPSILON);
    let mut pixels: Vec<u8> = values.iter().map(|v| (((v - low) / span).clamp(0.0, 1.0) * 255.0).round() as u8).collect();
    if decoded.photometric_interpretation() == &PhotometricInterpretation::Monochrome1 {
        pixels.iter_mut().for_each(|p| *p = 255 - *p);
    }
    GrayImage::from_raw(decoded.columns(), decoded.rows(), pixels)
        .map(DynamicImage::ImageLuma8)
        .ok_or_else(|| "frame has fewer pixels than Rows x Columns".to_owned())
}

fn dicom_object_text(object: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<String> {
    let value = object.get(tag)?.to_str().ok()?;
    Some(value.trim_matches(['\0', ' ']).to_owned())
}

/// A palette-colour frame mapped through its red, green and blue lookup tables.
fn palette_image(object: &DefaultDicomObject, indices: &[u16], columns: u32, rows: u32) -> Result<DynamicImage, String> {
    let red = palette_lut(object, tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA)?;
    let green =
        palette_lut(object, tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA)?;
    let blue = palette_lut(object, tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR, tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA)?;
    let mut pixels = Vec::with_capacity(indices.len() * 3);
    for &index in indices {
        pixels.extend([red.map(index), green.map(index), blue.map(index)]);
    }
    RgbImage::from_raw(columns, rows, pixels)
        .map(DynamicImage::ImageRgb8)
        .ok_or_else(|| "palette image has fewer pixels than Rows x Columns".to_owned())
}

/// One palette lookup table, its entries scaled to 8 bits.
struct PaletteLut {
    first: i64,
    entries: Vec<u8>,
}

impl PaletteLut {
    fn map(&self, index: u16) -> u8 {
        let i = (i64::from(index) - self.first).clamp(0, self.entries.len() as i64 - 1);
        self.entries[i as usize]
    }
}

fn palette_lut(object: &DefaultDicomObject, descriptor: dicom_core::Tag, data: dicom_core::Tag) -> Result<PaletteLut, String> {
    let missing = || format!("palette colour lookup table {data} is missing or malformed");
    let descriptor: Vec<i64> =
        object.get(descriptor).and_then(|e| e.to_multi_int::<i64>().ok()).filter(|d| d.len() == 3).ok_or_else(missing)?;
    // Entries of 0 mean 65536; the first mapped value is unsigned here in practice.
    let count = if descriptor[0] == 0 { 65536 } else { descriptor[0] as usize };
    let (first, bits) = (descriptor[1] & 0xFFFF, descriptor[2]);
    let bytes = object.get(data).and_then(|e| e.to_bytes().ok()).ok_or_else(missing)?;
    let entries: Vec<u8> = if bits == 8 && bytes.len() == count {
        bytes.to_vec()
    } else {
        let words = bytes.chunks_exact(2).map(|w| u16::from_le_bytes([w[0], w[1]]));
        if bits == 8 { words.map(|w| (w & 0xFF) as u8).collect() } else { words.map(|w| (w >> 8) as u8).collect() }
    };
    if entries.is_empty() {
        return Err(missing());
    }
    Ok(PaletteLut { first, entries })
}
