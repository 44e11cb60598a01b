//! The walker on pydicom's bundled files (every transfer syntax they cover): each file dicom-rs
//! reads whole passes, and each image cut short anywhere fails; and on hand-cut data sets.

use std::io::Cursor;
use std::path::PathBuf;

use super::*;

/// pydicom's test files folder (pydicom is installed where the tests run).
fn pydicom_files() -> Vec<PathBuf> {
    let out = std::process::Command::new("python3")
        .args(["-c", "import pydicom.data, os; print(os.path.dirname(pydicom.data.get_testdata_file('CT_small.dcm')))"])
        .output()
        .expect("python3 with pydicom");
    let dir = String::from_utf8(out.stdout).expect("utf-8").trim().to_owned();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("pydicom test files")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    files.sort();
    files
}

/// The files dicom-rs opens and reads to their end, with their bytes.
fn readable_files() -> Vec<(PathBuf, Vec<u8>)> {
    pydicom_files()
        .into_iter()
        .filter(|p| dicom_object::open_file(p).is_ok())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("read");
            (p, bytes)
        })
        .collect()
}

fn walk(bytes: &[u8]) -> Result<(), Damage> {
    check(Cursor::new(bytes), bytes.len() as u64).expect("no I/O error on memory")
}

/// Files of pydicom's set that are damaged on purpose, or in ways the walker rightly finds.
const KNOWN_DAMAGED: &[&str] = &[
    // An MR image stripped of its pixel data (it shows a private sequence): not its SOP class.
    "priv_SQ.dcm",
];

#[test]
fn every_whole_pydicom_file_passes() {
    let files = readable_files();
    assert!(files.len() > 40, "pydicom's files were found: {}", files.len());
    let mut transfer_syntaxes = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for (path, bytes) in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let object = dicom_object::open_file(path).expect("opened before");
        transfer_syntaxes.insert(object.meta().transfer_syntax().trim_end_matches('\0').to_owned());
        match walk(bytes) {
            Ok(()) => assert!(!KNOWN_DAMAGED.contains(&name.as_str()), "{name} is listed as damaged but passes"),
            Err(e) if KNOWN_DAMAGED.contains(&name.as_str()) => eprintln!("{name}: {e} (known)"),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "whole files refused:\n{}", failures.join("\n"));
    for ts in [
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.5",
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.80",
    ] {
        assert!(transfer_syntaxes.contains(ts), "no file of {ts} walked: {transfer_syntaxes:?}");
    }
}

/// True for a file whose SOP class is an image storage class: cut anywhere, it must fail.
fn is_image(bytes: &[u8]) -> bool {
    let object = dicom_object::from_reader(Cursor::new(&bytes[128..])).ok();
    object.is_some_and(|o| {
        let class = o.meta().media_storage_sop_class_uid().trim_end_matches('\0').to_owned();
        StandardSopClassDictionary.by_uid(&class).is_some_and(|e| e.name().contains("Image Storage"))
    })
}

#[test]
fn every_cut_of_an_image_fails() {
    let mut checked = 0;
    for (path, bytes) in readable_files() {
        if KNOWN_DAMAGED.contains(&path.file_name().unwrap().to_str().unwrap())
            || bytes.len() < 132
            || &bytes[128..132] != b"DICM"
            || !is_image(&bytes)
        {
            continue;
        }
        checked += 1;
        let len = bytes.len();
        // image_dfl.dcm has 8 bytes after its deflate stream's end: not data, so cutting them
        // leaves the data set whole.
        let len_of_data = if path.ends_with("image_dfl.dcm") { len - 8 } else { len };
        // Every byte of the header region, then a spread over the rest, and the last bytes.
        let stride = (len / 300).max(1);
        let cuts = (0..len.min(4096)).chain((4096..len).step_by(stride)).chain([len - 2, len - 1]);
        for cut in cuts.filter(|&c| c < len_of_data) {
            assert!(walk(&bytes[..cut]).is_err(), "{} cut to {cut} of {len} bytes passes", path.display());
        }
    }
    assert!(checked > 20, "images checked: {checked}");
}

/// A Part-10 file of explicit VR little endian around `dataset`.
fn part10(transfer_syntax: &str, dataset: &[u8]) -> Vec<u8> {
    let mut ts = transfer_syntax.as_bytes().to_vec();
    if ts.len() % 2 == 1 {
        ts.push(0);
    }
    let mut bytes = vec![0u8; 128];
    bytes.extend_from_slice(b"DICM");
    bytes.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
    bytes.extend_from_slice(&(ts.len() as u16).to_le_bytes());
    bytes.extend_from_slice(&ts);
    bytes.extend_from_slice(dataset);
    bytes
}

/// An explicit VR little endian element with a short length.
fn short(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut e = [group.to_le_bytes(), element.to_le_bytes()].concat();
    e.extend_from_slice(vr);
    e.extend_from_slice(&(value.len() as u16).to_le_bytes());
    e.extend_from_slice(value);
    e
}

/// An explicit VR little endian element with a long length (OB, SQ, ...).
fn long(group: u16, element: u16, vr: &[u8; 2], len: u32, value: &[u8]) -> Vec<u8> {
    let mut e = [group.to_le_bytes(), element.to_le_bytes()].concat();
    e.extend_from_slice(vr);
    e.extend_from_slice(&[0, 0]);
    e.extend_from_slice(&len.to_le_bytes());
    e.extend_from_slice(value);
    e
}

fn item(len: u32) -> Vec<u8> {
    [0xFFFEu16.to_le_bytes(), 0xE000u16.to_le_bytes()].concat().into_iter().chain(len.to_le_bytes()).collect()
}

fn delimiter(element: u16) -> Vec<u8> {
    [0xFFFEu16.to_le_bytes(), element.to_le_bytes()].concat().into_iter().chain([0; 4]).collect()
}

/// Rows 2, Columns 3, 1 sample, 16 bits: 12 bytes of pixel data.
fn image_attributes() -> Vec<u8> {
    [
        short(0x0028, 0x0002, b"US", &1u16.to_le_bytes()),
        short(0x0028, 0x0004, b"CS", b"MONOCHROME2 "),
        short(0x0028, 0x0010, b"US", &2u16.to_le_bytes()),
        short(0x0028, 0x0011, b"US", &3u16.to_le_bytes()),
        short(0x0028, 0x0100, b"US", &16u16.to_le_bytes()),
    ]
    .concat()
}

const EXPLICIT: &str = "1.2.840.10008.1.2.1";

#[test]
fn hand_made_native_image() {
    let whole = part10(EXPLICIT, &[image_attributes(), long(0x7FE0, 0x0010, b"OW", 12, &[7; 12])].concat());
    assert_eq!(walk(&whole), Ok(()));
    // Complete elements, but two bytes of pixels missing: parses, does not match the image.
    let short_pixels = part10(EXPLICIT, &[image_attributes(), long(0x7FE0, 0x0010, b"OW", 10, &[7; 10])].concat());
    assert!(matches!(walk(&short_pixels), Err(Damage::PixelData(_))), "{:?}", walk(&short_pixels));
    // One byte short: the element runs past the file's end.
    assert!(matches!(walk(&whole[..whole.len() - 1]), Err(Damage::Structure { .. })));
    // An image with no pixel data at all.
    let none = part10(EXPLICIT, &image_attributes());
    assert!(matches!(walk(&none), Err(Damage::PixelData(_))));
}

#[test]
fn hand_made_sequences() {
    let code = short(0x0008, 0x0100, b"SH", b"T1");
    // An undefined-length sequence with an undefined-length item, both delimited.
    let delimited =
        [long(0x0040, 0xA730, b"SQ", u32::MAX, &[]), item(u32::MAX), code.clone(), delimiter(0xE00D), delimiter(0xE0DD)].concat();
    assert_eq!(walk(&part10(EXPLICIT, &delimited)), Ok(()));
    // Without its sequence delimiter, or its item delimiter.
    assert!(walk(&part10(EXPLICIT, &delimited[..delimited.len() - 8])).is_err());
    let no_item_end = [long(0x0040, 0xA730, b"SQ", u32::MAX, &[]), item(u32::MAX), code.clone(), delimiter(0xE0DD)].concat();
    assert!(walk(&part10(EXPLICIT, &no_item_end)).is_err());
    // A defined-length item longer than its defined-length sequence.
    let item_len = code.len() as u32;
    let overrun =
        [long(0x0040, 0xA730, b"SQ", 8 + item_len - 2, &[]), item(item_len), code.clone(), short(0x0010, 0x0020, b"LO", b"P1")]
            .concat();
    assert!(walk(&part10(EXPLICIT, &overrun)).is_err());
    let fits =
        [long(0x0040, 0xA730, b"SQ", 8 + item_len, &[]), item(item_len), code.clone(), short(0x0010, 0x0020, b"LO", b"P1")]
            .concat();
    assert_eq!(walk(&part10(EXPLICIT, &fits)), Ok(()));
    // An element longer than its item.
    let long_value = [long(0x0040, 0xA730, b"SQ", u32::MAX, &[]), item(4), code, delimiter(0xE0DD)].concat();
    assert!(walk(&part10(EXPLICIT, &long_value)).is_err());
}

#[test]
fn hand_made_encapsulated_pixel_data() {
    const JPEG: &str = "1.2.840.10008.1.2.4.50";
    let fragments = [long(0x7FE0, 0x0010, b"OB", u32::MAX, &[]), item(0), item(6), vec![1; 6]].concat();
    let whole = part10(JPEG, &[image_attributes(), fragments.clone(), delimiter(0xE0DD)].concat());
    assert_eq!(walk(&whole), Ok(()));
    // No sequence delimiter; a fragment cut; a fragment header cut.
    assert!(walk(&part10(JPEG, &[image_attributes(), fragments.clone()].concat())).is_err());
    assert!(walk(&whole[..whole.len() - 9]).is_err());
    assert!(walk(&whole[..whole.len() - 4]).is_err());
}

#[test]
fn not_part10_is_damage() {
    assert!(matches!(walk(b"hello"), Err(Damage::Structure { .. })));
    assert!(walk(&[0u8; 200]).is_err());
}

/// The walk's cost beside the header read's, on a small CT and a 512 x 512 CT (its pages
/// cached, as ingest finds them): `cargo test --release -p wasmpacs --lib measure_walk_cost --
/// --ignored --nocapture`. It prints figures; it asserts none.
#[test]
#[ignore]
fn measure_walk_cost() {
    let dir = tempfile::tempdir().expect("temp dir");
    let generator = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/gen_ct.py");
    let made = std::process::Command::new("python3")
        .arg(generator)
        .arg(dir.path())
        .args(["-n", "1", "--studies", "1", "--series-per-study", "1"])
        .status();
    assert!(made.expect("python3").success(), "gen_ct.py (pydicom and numpy)");
    let large = walkdir(dir.path()).into_iter().find(|p| p.extension().is_some_and(|e| e == "dcm")).expect("a generated CT");
    let small = pydicom_files().into_iter().find(|p| p.ends_with("CT_small.dcm")).expect("CT_small.dcm");
    for path in [small, large] {
        const RUNS: u32 = 2000;
        let started = std::time::Instant::now();
        for _ in 0..RUNS {
            assert_eq!(check_file(&path).expect("readable"), Ok(()));
        }
        let walk = started.elapsed() / RUNS;
        let started = std::time::Instant::now();
        for _ in 0..RUNS {
            crate::dicom::header::read_header(&path).expect("header");
        }
        let header = started.elapsed() / RUNS;
        let len = std::fs::metadata(&path).expect("metadata").len();
        eprintln!("{} ({len} bytes): walk {walk:?}, header read {header:?} per file", path.display());
    }
}

/// Every file under `dir`.
fn walkdir(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() { out.extend(walkdir(&path)) } else { out.push(path) }
    }
    out
}

#[test]
fn nesting_past_the_limit_is_refused_without_exhausting_the_stack() {
    // `levels` undefined-length sequences, each in an item of the one around it.
    let nested = |levels: usize| {
        let open = [long(0x0040, 0xA730, b"SQ", u32::MAX, &[]), item(u32::MAX)].concat();
        let close = [delimiter(0xE00D), delimiter(0xE0DD)].concat();
        part10(EXPLICIT, &[open.repeat(levels), close.repeat(levels)].concat())
    };
    assert_eq!(walk(&nested(MAX_DEPTH - 1)), Ok(()));
    // Far past any thread's stack were it followed: a few hundred kilobytes of input.
    assert!(matches!(walk(&nested(20_000)), Err(Damage::TooDeep { .. })));
}

#[test]
fn image_attributes_past_any_file_are_damage_not_overflow() {
    let huge = [
        short(0x0028, 0x0002, b"US", &1u16.to_le_bytes()),
        short(0x0028, 0x0008, b"IS", b"999999999999999999"),
        short(0x0028, 0x0010, b"US", &u16::MAX.to_le_bytes()),
        short(0x0028, 0x0011, b"US", &u16::MAX.to_le_bytes()),
        short(0x0028, 0x0100, b"US", &16u16.to_le_bytes()),
        long(0x7FE0, 0x0010, b"OW", 12, &[7; 12]),
    ]
    .concat();
    assert!(matches!(walk(&part10(EXPLICIT, &huge)), Err(Damage::PixelData(_))));
}
