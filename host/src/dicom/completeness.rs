//! Whether a Part-10 file holds a whole data set: the rule that decides if an instance may be
//! acknowledged (ingest) and whether a stored copy is damaged (`wasmpacs check`, re-sends).
//!
//! The walk reads element headers and seeks over values, so it costs a few reads of pages the
//! header reader has just touched, never a read of the pixel data (a deflated data set alone is
//! inflated, as a stream). It checks that every element fits in the file and in its enclosing
//! item or sequence, that undefined-length sequences, items and encapsulated pixel data end with
//! their delimiters, that native Pixel Data is at least as long as the image attributes say, and
//! that an instance of an image storage class has pixel data (a data set cut between two
//! elements parses, but lacks it). 0xC000 and 0xA900, the statuses a [`Damage`] is answered with,
//! are chosen where ingest answers (STOW-RS, C-STORE).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, UidDictionary, UidDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, StandardSopClassDictionary};

/// What is wrong with a data set that is not whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// The data set does not parse to its end (cut, or an element overruns its container).
    #[error("the data set is cut or malformed at byte {at}: {what}")]
    Structure { at: u64, what: String },
    /// Sequences nested deeper than [`MAX_DEPTH`]: no real object does that, and a parser that
    /// follows them recursively (this walk, dicom-rs) would run out of stack.
    #[error("sequences are nested more than {MAX_DEPTH} deep at byte {at}")]
    TooDeep { at: u64 },
    /// It parses, but its pixel data does not match its image attributes.
    #[error("the pixel data does not match the image attributes: {0}")]
    PixelData(String),
}

/// Checks the Part-10 file at `path`. An I/O error other than the file being short is returned
/// as such: it says nothing about the file's bytes.
pub fn check_file(path: &Path) -> io::Result<Result<(), Damage>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    check(BufReader::with_capacity(8 * 1024, file), len)
}

/// Checks a Part-10 file of `len` bytes read from `reader`.
pub fn check<R: Read + Seek>(reader: R, len: u64) -> io::Result<Result<(), Damage>> {
    let outcome = match walk_file(Plain { reader, pos: 0, len }) {
        Ok(()) => Ok(()),
        Err(Stop::Damage(damage)) => Err(damage),
        Err(Stop::Io(e)) => return Err(e),
    };
    Ok(outcome)
}

/// Why a walk stopped early.
enum Stop {
    Damage(Damage),
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

type Walk<T> = Result<T, Stop>;

fn damaged<T>(at: u64, what: impl Into<String>) -> Walk<T> {
    Err(Stop::Damage(Damage::Structure { at, what: what.into() }))
}

/// Deepest nesting of sequences walked; real objects stay far below it.
pub const MAX_DEPTH: usize = 64;

const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_END: Tag = Tag(0xFFFE, 0xE0DD);
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
const SOP_CLASS: Tag = Tag(0x0008, 0x0016);
const UNDEFINED: u32 = u32::MAX;

/// Values up to this long are read through (from the reader's buffer, mostly) rather than
/// sought over: a seek drops the buffer, and the next header would cost a system call.
const SKIP_BY_READING: u64 = 4 * 1024;

/// Where the bytes come from: the file itself (seekable, length known), or the inflated data
/// set of a deflated transfer syntax (read forward only, its end found by reading).
enum Source<R: Read + Seek> {
    Plain(Plain<R>),
    Inflated { inner: Box<Inflate<BufReader<Plain<R>>>>, pos: u64 },
}

/// Inflates a raw deflate stream, telling a stream that ends before its last block (a cut
/// file) from one that ends whole: flate2's reader takes the first for an end.
struct Inflate<R> {
    input: R,
    state: flate2::Decompress,
    ended: bool,
}

impl<R: io::BufRead> Read for Inflate<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while !self.ended && !out.is_empty() {
            let input = self.input.fill_buf()?;
            let eof = input.is_empty();
            let (before_in, before_out) = (self.state.total_in(), self.state.total_out());
            let flush = if eof { flate2::FlushDecompress::Finish } else { flate2::FlushDecompress::None };
            let status = self.state.decompress(input, out, flush).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let consumed = (self.state.total_in() - before_in) as usize;
            let produced = (self.state.total_out() - before_out) as usize;
            self.input.consume(consumed);
            self.ended = status == flate2::Status::StreamEnd;
            if produced > 0 {
                return Ok(produced);
            }
            if eof && !self.ended {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the deflate stream ends before its last block"));
            }
        }
        Ok(0)
    }
}

struct Plain<R> {
    reader: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Read for Plain<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.reader.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Source<R> {
    fn pos(&self) -> u64 {
        match self {
            Source::Plain(p) => p.pos,
            Source::Inflated { pos, .. } => *pos,
        }
    }

    /// Fills `buf`; `Ok(false)` when the source ended first.
    fn read_full(&mut self, buf: &mut [u8]) -> Walk<bool> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = match self {
                Source::Plain(p) => p.read(&mut buf[filled..]),
                Source::Inflated { inner, pos } => inner.read(&mut buf[filled..]).inspect(|n| *pos += *n as u64),
            };
            match n {
                Ok(0) => return Ok(false),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A cut deflate stream reads as an error of the stream's data, not of the disk.
                Err(e) if matches!(self, Source::Inflated { .. }) && is_cut(&e) => {
                    return damaged(self.pos(), format!("the deflated data set is cut or corrupt ({})", e.kind()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    fn read_or_damage(&mut self, buf: &mut [u8], what: &str) -> Walk<()> {
        let at = self.pos();
        if self.read_full(buf)? { Ok(()) } else { damaged(at, format!("the file ends inside {what}")) }
    }

    /// Moves over `n` value bytes, which must all be there (`what` names them in a message).
    fn skip(&mut self, n: u64, what: impl Fn() -> String) -> Walk<()> {
        let at = self.pos();
        match self {
            Source::Plain(p) => {
                if p.len - p.pos < n {
                    return damaged(at, format!("{} is {n} bytes long but the file ends {} bytes on", what(), p.len - p.pos));
                }
                if n <= SKIP_BY_READING {
                    // Most likely in the reader's buffer already: no system call.
                    io::copy(&mut p.by_ref().take(n), &mut io::sink())?;
                } else {
                    // Seeking (not reading) keeps the pixel data out of memory and off the disk.
                    p.reader.seek(io::SeekFrom::Current(n as i64))?;
                    p.pos += n;
                }
                Ok(())
            }
            Source::Inflated { inner, pos } => {
                let copied = io::copy(&mut inner.by_ref().take(n), &mut io::sink());
                match copied {
                    Ok(c) => {
                        *pos += c;
                        if c < n {
                            damaged(at, format!("{} is {n} bytes long but the data set ends {c} bytes on", what()))
                        } else {
                            Ok(())
                        }
                    }
                    Err(e) if is_cut(&e) => damaged(at, format!("the deflated data set is cut or corrupt ({})", e.kind())),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

/// True for an inflating error that says the stream is cut or corrupt (not the disk failing).
fn is_cut(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof)
}

/// How a data set's elements are encoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Encoding {
    explicit: bool,
    big_endian: bool,
}

const EXPLICIT_LE: Encoding = Encoding { explicit: true, big_endian: false };
const IMPLICIT_LE: Encoding = Encoding { explicit: false, big_endian: false };

impl Encoding {
    fn u16(self, b: [u8; 2]) -> u16 {
        if self.big_endian { u16::from_be_bytes(b) } else { u16::from_le_bytes(b) }
    }
    fn u32(self, b: [u8; 4]) -> u32 {
        if self.big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
    }
}

/// One element's header.
struct Header {
    tag: Tag,
    vr: Option<VR>,
    len: u32,
    /// Where the header started, for messages.
    at: u64,
}

/// Image attributes of the top-level data set that say how long native pixel data is.
#[derive(Default)]
struct Image {
    rows: Option<u64>,
    columns: Option<u64>,
    samples: Option<u64>,
    bits_allocated: Option<u64>,
    frames: Option<String>,
    photometric: Option<String>,
    /// Value length of a native Pixel Data element, when there is one.
    native_pixel_len: Option<u64>,
    has_pixel_data: bool,
    /// SOP Class UID: an image storage class must have pixel data.
    sop_class: Option<String>,
}

/// Where a data set ends.
#[derive(Clone, Copy)]
enum Limit {
    /// The end of the file (or of the inflated stream): the top-level data set.
    End,
    /// A defined-length item's end.
    At(u64),
    /// An undefined-length item's delimiter.
    ItemDelimiter,
}

fn walk_file<R: Read + Seek>(mut plain: Plain<R>) -> Walk<()> {
    // A Part-10 file starts with a 128-byte preamble; some writers leave it out.
    let mut preamble = [0u8; 132];
    let whole = plain.len >= 132 && {
        plain.reader.read_exact(&mut preamble)?;
        plain.pos = 132;
        &preamble[128..] == b"DICM"
    };
    if !whole {
        let mut magic = [0u8; 4];
        plain.reader.seek(io::SeekFrom::Start(0))?;
        plain.pos = 0;
        if plain.len >= 4 {
            plain.reader.read_exact(&mut magic)?;
            plain.pos = 4;
        }
        if &magic != b"DICM" {
            return damaged(0, "no DICM prefix: not a Part-10 file");
        }
    }
    let (transfer_syntax, meta_sop_class) = walk_meta(&mut plain)?;
    let (encoding, deflated, native) = match transfer_syntax.as_str() {
        "1.2.840.10008.1.2" => (IMPLICIT_LE, false, true),
        "1.2.840.10008.1.2.1" => (EXPLICIT_LE, false, true),
        "1.2.840.10008.1.2.2" => (Encoding { explicit: true, big_endian: true }, false, true),
        "1.2.840.10008.1.2.1.99" => (EXPLICIT_LE, true, true),
        _ => (EXPLICIT_LE, false, false),
    };
    let mut source = if deflated {
        let pos = plain.pos;
        let inner = Box::new(Inflate { input: BufReader::new(plain), state: flate2::Decompress::new(false), ended: false });
        Source::Inflated { inner, pos }
    } else {
        Source::Plain(plain)
    };
    // The data set's SOP Class UID, read on the way, wins over the meta's.
    let mut image = Image { sop_class: meta_sop_class, ..Image::default() };
    walk_dataset(&mut source, encoding, Limit::End, 0, &mut image, native)?;
    check_pixels(&image)
}

/// Walks the file meta group (explicit VR little endian, group 0002) and returns its Transfer
/// Syntax UID; leaves the file at the data set's first element.
fn walk_meta<R: Read + Seek>(plain: &mut Plain<R>) -> Walk<(String, Option<String>)> {
    let (mut transfer_syntax, mut sop_class) = (None, None);
    while plain.len - plain.pos >= 8 {
        let at = plain.pos;
        let mut head = [0u8; 8];
        plain.reader.read_exact(&mut head)?;
        if u16::from_le_bytes([head[0], head[1]]) != 0x0002 {
            plain.reader.seek_relative(-8)?;
            break;
        }
        plain.pos += 8;
        let tag = Tag(0x0002, u16::from_le_bytes([head[2], head[3]]));
        let len = if matches!(&head[4..6], b"OB" | b"UN" | b"UT" | b"SQ" | b"OW" | b"UC" | b"UR") {
            let mut len = [0u8; 4];
            if plain.len - plain.pos < 4 {
                return damaged(at, "the file ends inside the file meta group");
            }
            plain.read_exact(&mut len)?;
            u32::from_le_bytes(len) as u64
        } else {
            u16::from_le_bytes([head[6], head[7]]) as u64
        };
        if plain.len - plain.pos < len {
            return damaged(at, format!("file meta element {tag} runs past the end of the file"));
        }
        if (tag == Tag(0x0002, 0x0010) || tag == Tag(0x0002, 0x0002)) && len <= 64 {
            let mut value = vec![0u8; len as usize];
            plain.read_exact(&mut value)?;
            let value = Some(String::from_utf8_lossy(&value).trim_end_matches(['\0', ' ']).to_owned());
            if tag.element() == 0x0010 { transfer_syntax = value } else { sop_class = value }
        } else {
            plain.reader.seek_relative(len as i64)?;
            plain.pos += len;
        }
    }
    match transfer_syntax {
        Some(ts) => Ok((ts, sop_class)),
        None => damaged(plain.pos, "the file meta group has no Transfer Syntax UID"),
    }
}

/// Reads an element header at the current position.
fn read_header<R: Read + Seek>(source: &mut Source<R>, encoding: Encoding) -> Walk<Header> {
    let at = source.pos();
    let mut head = [0u8; 8];
    source.read_or_damage(&mut head, "an element header")?;
    finish_header(source, encoding, head, at)
}

/// Walks a data set's elements until `limit`.
fn walk_dataset<R: Read + Seek>(
    source: &mut Source<R>,
    encoding: Encoding,
    limit: Limit,
    depth: usize,
    image: &mut Image,
    native: bool,
) -> Walk<()> {
    loop {
        match limit {
            Limit::At(end) if source.pos() == end => return Ok(()),
            Limit::At(end) if source.pos() > end => {
                return damaged(source.pos(), format!("an element runs past its item's end at byte {end}"));
            }
            Limit::End if matches!(source, Source::Plain(p) if p.pos >= p.len) => return Ok(()),
            _ => {}
        }
        let header = match (limit, &source) {
            // The inflated stream's end is only found by reading: no byte where an element
            // would start is the data set's end (a cut inside an element is not).
            (Limit::End, Source::Inflated { .. }) => {
                let mut first = [0u8; 1];
                let at = source.pos();
                if !source.read_full(&mut first)? {
                    return Ok(());
                }
                let mut rest = [0u8; 7];
                source.read_or_damage(&mut rest, "an element header")?;
                let mut head = [0u8; 8];
                head[0] = first[0];
                head[1..].copy_from_slice(&rest);
                finish_header(source, encoding, head, at)?
            }
            _ => read_header(source, encoding)?,
        };
        match header.tag {
            ITEM_END if matches!(limit, Limit::ItemDelimiter) => return Ok(()),
            ITEM_END | SEQUENCE_END | ITEM => {
                return damaged(header.at, format!("unexpected {} outside its place", header.tag));
            }
            _ => {}
        }
        let end_of_limit = match limit {
            Limit::At(end) => Some(end),
            _ => None,
        };
        walk_value(source, encoding, &header, end_of_limit, depth, image, native)?;
    }
}

/// An element header whose first 8 bytes (read at `at`) are `head`: reads the 4-byte length
/// of the VRs that have one.
fn finish_header<R: Read + Seek>(source: &mut Source<R>, encoding: Encoding, head: [u8; 8], at: u64) -> Walk<Header> {
    let tag = Tag(encoding.u16([head[0], head[1]]), encoding.u16([head[2], head[3]]));
    if tag.group() == 0xFFFE || !encoding.explicit {
        return Ok(Header { tag, vr: None, len: encoding.u32([head[4], head[5], head[6], head[7]]), at });
    }
    let vr = VR::from_binary([head[4], head[5]]);
    let long = matches!(
        vr,
        Some(VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::SQ | VR::SV | VR::UC | VR::UN | VR::UR | VR::UT | VR::UV)
    );
    let len = if long {
        let mut len = [0u8; 4];
        source.read_or_damage(&mut len, "an element header")?;
        encoding.u32(len)
    } else {
        encoding.u16([head[6], head[7]]) as u32
    };
    Ok(Header { tag, vr, len, at })
}

/// Walks one element's value: a sequence's items, encapsulated pixel data's fragments, or
/// plain bytes (read when they are an image attribute of the top level, else skipped).
fn walk_value<R: Read + Seek>(
    source: &mut Source<R>,
    encoding: Encoding,
    header: &Header,
    limit: Option<u64>,
    depth: usize,
    image: &mut Image,
    native: bool,
) -> Walk<()> {
    let vr = header.vr.or_else(|| {
        // Implicit VR: only whether it is a sequence matters.
        StandardDataDictionary.by_tag(header.tag).map(|entry| entry.vr().relaxed())
    });
    let is_pixel_data = depth == 0 && header.tag == PIXEL_DATA;
    if header.len == UNDEFINED {
        // Encapsulated pixel data, of the image or of an icon in a sequence item.
        if header.tag == PIXEL_DATA && encoding.explicit {
            image.has_pixel_data |= is_pixel_data;
            return walk_fragments(source, encoding);
        }
        // An undefined-length UN is a sequence encoded in implicit VR little endian (PS3.5 6.2.2).
        let inner = if vr == Some(VR::UN) { IMPLICIT_LE } else { encoding };
        if vr == Some(VR::SQ) || vr == Some(VR::UN) || !encoding.explicit {
            return walk_items(source, inner, None, depth, image, native);
        }
        return damaged(header.at, format!("element {} has an undefined length but is no sequence", header.tag));
    }
    let len = header.len as u64;
    if let Some(end) = limit
        && source.pos() + len > end
    {
        return damaged(header.at, format!("element {} ({len} bytes) runs past its item's end", header.tag));
    }
    if vr == Some(VR::SQ) {
        let end = source.pos() + len;
        if let Source::Plain(p) = source
            && end > p.len
        {
            return damaged(header.at, format!("sequence {} ({len} bytes) runs past the end of the file", header.tag));
        }
        return walk_items(source, encoding, Some(end), depth, image, native);
    }
    if depth == 0 {
        if is_pixel_data {
            image.has_pixel_data = true;
            if !native {
                return damaged(header.at, "encapsulated Pixel Data with a defined length");
            }
            image.native_pixel_len = Some(len);
        } else if (header.tag.group() == 0x0028 || header.tag == SOP_CLASS) && len <= 64 {
            return read_image_attribute(source, encoding, header, image);
        } else if matches!(header.tag, Tag(0x7FE0, 0x0008) | Tag(0x7FE0, 0x0009)) {
            image.has_pixel_data = true;
        }
    }
    source.skip(len, || format!("element {}", header.tag))
}

/// Reads a small image attribute of group 0028 the pixel check needs.
fn read_image_attribute<R: Read + Seek>(
    source: &mut Source<R>,
    encoding: Encoding,
    header: &Header,
    image: &mut Image,
) -> Walk<()> {
    let mut value = vec![0u8; header.len as usize];
    let at = source.pos();
    if !source.read_full(&mut value)? {
        return damaged(at, format!("element {} runs past the end of the file", header.tag));
    }
    let us = || (value.len() >= 2).then(|| encoding.u16([value[0], value[1]]) as u64);
    let text = || String::from_utf8_lossy(&value).trim_matches(['\0', ' ']).to_owned();
    if header.tag == SOP_CLASS {
        image.sop_class = Some(text());
        return Ok(());
    }
    match header.tag.element() {
        0x0002 => image.samples = us(),
        0x0004 => image.photometric = Some(text()),
        0x0008 => image.frames = Some(text()),
        0x0010 => image.rows = us(),
        0x0011 => image.columns = us(),
        0x0100 => image.bits_allocated = us(),
        _ => {}
    }
    Ok(())
}

/// Walks a sequence's items: up to `end` for a defined length, else to its delimiter.
fn walk_items<R: Read + Seek>(
    source: &mut Source<R>,
    encoding: Encoding,
    end: Option<u64>,
    depth: usize,
    image: &mut Image,
    native: bool,
) -> Walk<()> {
    if depth >= MAX_DEPTH {
        return Err(Stop::Damage(Damage::TooDeep { at: source.pos() }));
    }
    loop {
        if end.is_some_and(|end| source.pos() == end) {
            return Ok(());
        }
        let header = read_header(source, encoding)?;
        match header.tag {
            SEQUENCE_END if end.is_none() => return Ok(()),
            ITEM => {}
            other => {
                return damaged(header.at, format!("{other} where a sequence item should start"));
            }
        }
        if header.len == UNDEFINED {
            walk_dataset(source, encoding, Limit::ItemDelimiter, depth + 1, image, native)?;
        } else {
            let item_end = source.pos() + header.len as u64;
            if end.is_some_and(|end| item_end > end) {
                return damaged(header.at, "an item runs past its sequence's end");
            }
            if let Source::Plain(p) = source
                && item_end > p.len
            {
                return damaged(header.at, "an item runs past the end of the file");
            }
            walk_dataset(source, encoding, Limit::At(item_end), depth + 1, image, native)?;
        }
    }
}

/// Walks encapsulated pixel data: the offset table and fragments as items, seeking over each,
/// then the sequence delimiter.
fn walk_fragments<R: Read + Seek>(source: &mut Source<R>, encoding: Encoding) -> Walk<()> {
    loop {
        let header = read_header(source, encoding)?;
        match header.tag {
            SEQUENCE_END => return Ok(()),
            ITEM if header.len != UNDEFINED => source.skip(header.len as u64, || "a pixel data fragment".into())?,
            other => {
                return damaged(header.at, format!("{other} where a pixel data fragment should start"));
            }
        }
    }
}

/// Native pixel data must be at least as long as Rows x Columns x samples x Bits Allocated / 8 x
/// frames; an instance of an image storage class must have pixel data, and so must image
/// attributes without any pixel
/// data do not describe a whole image.
fn check_pixels(image: &Image) -> Walk<()> {
    // A data set cut between two elements parses; an image class without its pixels shows it.
    let image_class = image.sop_class.as_deref().and_then(|uid| StandardSopClassDictionary.by_uid(uid)).map(|e| e.name());
    if let Some(class) = image_class.filter(|name| name.contains("Image Storage"))
        && !image.has_pixel_data
    {
        return Err(Stop::Damage(Damage::PixelData(format!("a {class} instance without Pixel Data"))));
    }
    let (Some(rows), Some(columns)) = (image.rows, image.columns) else {
        return Ok(());
    };
    if !image.has_pixel_data {
        return Err(Stop::Damage(Damage::PixelData(format!("{rows} x {columns} image without Pixel Data"))));
    }
    let Some(actual) = image.native_pixel_len else {
        return Ok(());
    };
    let frames = match image.frames.as_deref() {
        None | Some("") => 1,
        Some(text) => match text.parse::<u64>() {
            Ok(n) => n,
            // A malformed count says nothing sure about the length: let it through.
            Err(_) => return Ok(()),
        },
    };
    let samples = image.samples.unwrap_or(1);
    let bits = image.bits_allocated.unwrap_or(8);
    // YBR_FULL_422 keeps two samples' worth per pixel (the chrominance halved).
    let per_pixel_bits = match image.photometric.as_deref() {
        Some("YBR_FULL_422") if samples == 3 => 2u64.checked_mul(bits),
        _ => samples.checked_mul(bits),
    };
    // Attributes from the network: a product past u64 describes no file that could hold it.
    let Some(expected_bits) =
        rows.checked_mul(columns).and_then(|p| p.checked_mul(frames)).zip(per_pixel_bits).and_then(|(p, b)| p.checked_mul(b))
    else {
        return Err(Stop::Damage(Damage::PixelData(format!(
            "{rows} x {columns} x {samples} samples x {bits} bits x {frames} frames is more than any file holds"
        ))));
    };
    let expected = expected_bits.div_ceil(8);
    // Bytes beyond (the padding byte of an odd length, or more, as some devices write) are
    // let through: a short value is what a cut leaves.
    if actual >= expected {
        return Ok(());
    }
    Err(Stop::Damage(Damage::PixelData(format!(
        "Pixel Data holds {actual} bytes where {rows} x {columns} x {samples} samples x {bits} bits x {frames} frames make {expected}"
    ))))
}

#[cfg(test)]
mod tests;
