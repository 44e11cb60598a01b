//! What the uploaded file is: a single slide file (SVS, NDPI, ...) or a MIRAX archive, a ZIP
//! holding one `.mrxs` descriptor beside its data folder.

use wasmpacs_sdk::types::StagedFile;
use wasmpacs_sdk::{HostError, Response, error, staging};

/// The two kinds of slide upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Single,
    Mirax,
}

impl Kind {
    /// The kind of the `file` part: a MIRAX archive when the client labels it `application/zip`
    /// or names it `*.zip`.
    pub fn of_upload(file: &StagedFile) -> Kind {
        let zip_type = file
            .content_type
            .as_deref()
            .and_then(|t| t.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/zip"));
        let zip_name = file.file_name.as_deref().is_some_and(|n| ends_with_ignore_case(n.trim(), ".zip"));
        if zip_type || zip_name { Kind::Mirax } else { Kind::Single }
    }

    /// The kind a sidecar describes, from the file name it references: `*.zip` or `*.mrxs` is a
    /// MIRAX archive.
    pub fn of_referenced(name: &str) -> Kind {
        if ends_with_ignore_case(name, ".zip") || ends_with_ignore_case(name, ".mrxs") { Kind::Mirax } else { Kind::Single }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Single => "single slide",
            Kind::Mirax => "MIRAX archive",
        }
    }
}

/// The path, inside a MIRAX archive, of its one `.mrxs` descriptor. A 400 when the file is not a
/// readable ZIP or holds no descriptor or several. macOS metadata (`__MACOSX/`, `._*`) is skipped.
pub fn mirax_descriptor(file: &StagedFile) -> Result<String, Response> {
    let entries = staging::zip_entries(file.id).map_err(|e| match e {
        HostError::Invalid(m) => error(400, format!("the `file` part is not a readable ZIP archive: {m}")),
        other => Response::from(other),
    })?;
    let mut descriptors = entries.into_iter().filter(|e| !e.is_dir && is_descriptor(&e.name)).map(|e| e.name);
    let first = descriptors.next();
    let others: Vec<String> = descriptors.collect();
    match first {
        None => Err(error(400, "the archive does not contain the MIRAX descriptor (.mrxs)")),
        Some(first) if others.is_empty() => Ok(first),
        Some(first) => Err(error(
            400,
            format!("the archive contains more than one MIRAX descriptor (.mrxs): `{first}`, `{}`", others.join("`, `")),
        )),
    }
}

fn is_descriptor(path: &str) -> bool {
    let base = path.rsplit(['/', '\\']).next().unwrap_or(path);
    let macos = path.starts_with("__MACOSX/") || base.starts_with("._");
    !macos && ends_with_ignore_case(base, ".mrxs")
}

fn ends_with_ignore_case(text: &str, suffix: &str) -> bool {
    text.len() >= suffix.len()
        && text.is_char_boundary(text.len() - suffix.len())
        && text[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_and_suffixes() {
        assert!(is_descriptor("slide.mrxs"));
        assert!(is_descriptor("case/SLIDE.MRXS"));
        assert!(!is_descriptor("__MACOSX/case/._slide.mrxs"));
        assert!(!is_descriptor("case/._slide.mrxs"));
        assert!(!is_descriptor("slide/Index.dat"));
        assert!(!ends_with_ignore_case("é", ".zip"));
        assert_eq!(Kind::of_referenced("A.ZIP"), Kind::Mirax);
        assert_eq!(Kind::of_referenced("a.mrxs"), Kind::Mirax);
        assert_eq!(Kind::of_referenced("a.svs"), Kind::Single);
    }
}
