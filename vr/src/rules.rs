//! What each value representation allows (PS3.5 6.2, table 6.2-1): length, characters and
//! form. Only the VRs of archived fields are here; a field of another VR brings its rules along.

use std::fmt;

/// A value representation of an archived field.
#[allow(clippy::upper_case_acronyms)] // the VRs' own names, as PS3.5 spells them
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vr {
    /// Application Entity: at most 16 printable ASCII characters.
    AE,
    /// Code String: at most 16 upper-case letters, digits, spaces and underscores.
    CS,
    /// Date: YYYYMMDD.
    DA,
    /// Long String: at most 64 characters.
    LO,
    /// Person Name: at most 3 component groups of at most 64 characters and 5 components each.
    PN,
    /// Short String: at most 16 characters.
    SH,
    /// Time: HH, HHMM, HHMMSS or HHMMSS.F to HHMMSS.FFFFFF.
    TM,
    /// Unique Identifier: at most 64 digits and dots.
    UI,
}

/// The rule a value breaks, worded for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Longer than the VR allows, in characters.
    TooLong { vr: Vr, max: usize },
    /// A control character (CR, LF, TAB, NUL, ESC...) in a VR that allows none.
    Control { vr: Vr },
    /// A backslash, which separates the values of a multi-valued element.
    Backslash { vr: Vr },
    /// A character outside the default repertoire (printable ASCII) in a VR limited to it.
    NotAscii { vr: Vr },
    /// A CS value with other characters than upper-case letters, digits, space and underscore.
    CodeString,
    /// A PN value with more than 3 component groups.
    NameGroups,
    /// A PN component group with more than 5 components.
    NameComponents,
    /// A PN component group of more than 64 characters.
    NameGroupTooLong,
    /// A DA value that is not a calendar day written YYYYMMDD.
    Date,
    /// A TM value that is not a time of day in one of TM's forms.
    Time,
    /// A UI value with other characters than digits and dots, or an empty or zero-led component.
    Uid,
}

impl fmt::Display for Vr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooLong { vr, max } => write!(f, "{vr} allows at most {max} characters"),
            Refusal::Control { vr } => write!(f, "{vr} allows no control characters (CR, LF, TAB, ESC...)"),
            Refusal::Backslash { vr } => write!(f, "{vr} allows no `\\` (it separates the values of an element)"),
            Refusal::NotAscii { vr } => write!(f, "{vr} allows only printable ASCII characters"),
            Refusal::CodeString => f.write_str("CS allows only upper-case letters, digits, space and `_`"),
            Refusal::NameGroups => f.write_str("PN allows at most 3 component groups (separated by `=`)"),
            Refusal::NameComponents => f.write_str("PN allows at most 5 components per group (separated by `^`)"),
            Refusal::NameGroupTooLong => f.write_str("PN allows at most 64 characters per component group"),
            Refusal::Date => f.write_str("DA must be a calendar date written YYYYMMDD"),
            Refusal::Time => f.write_str("TM must be a time written HH, HHMM, HHMMSS or HHMMSS.FFFFFF (1 to 6 fraction digits)"),
            Refusal::Uid => {
                f.write_str("UI allows only digits and `.`, in components that are not empty and have no leading zero")
            }
        }
    }
}

impl Vr {
    /// Checks one value (a single value: these fields are single-valued).
    pub fn check(self, value: &str) -> Result<(), Refusal> {
        if value.is_empty() {
            return Ok(());
        }
        // Every control character is refused, ESC included: LO, SH and PN allow ESC only for
        // ISO 2022 code extensions, which ISO_IR 192 (UTF-8, what the archive answers in) has not.
        if value.chars().any(char::is_control) {
            return Err(Refusal::Control { vr: self });
        }
        if value.contains('\\') {
            return Err(Refusal::Backslash { vr: self });
        }
        match self {
            Vr::AE => ascii(self, value, 16),
            Vr::CS => {
                let allowed = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' ' || c == '_';
                if !value.chars().all(allowed) {
                    return Err(Refusal::CodeString);
                }
                at_most(self, value, 16)
            }
            Vr::DA => date(value),
            Vr::LO => at_most(self, value, 64),
            Vr::PN => person_name(value),
            Vr::SH => at_most(self, value, 16),
            Vr::TM => time(value),
            Vr::UI => {
                at_most(self, value, 64)?;
                let component_ok =
                    |c: &str| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) && (c == "0" || !c.starts_with('0'));
                if value.split('.').all(component_ok) { Ok(()) } else { Err(Refusal::Uid) }
            }
        }
    }
}

fn at_most(vr: Vr, value: &str, max: usize) -> Result<(), Refusal> {
    if value.chars().count() > max { Err(Refusal::TooLong { vr, max }) } else { Ok(()) }
}

fn ascii(vr: Vr, value: &str, max: usize) -> Result<(), Refusal> {
    if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(Refusal::NotAscii { vr });
    }
    at_most(vr, value, max)
}

/// PN: alphabetic, ideographic and phonetic groups separated by `=`, each of at most five
/// components (family, given, middle, prefix, suffix) separated by `^`.
fn person_name(value: &str) -> Result<(), Refusal> {
    let groups: Vec<&str> = value.split('=').collect();
    if groups.len() > 3 {
        return Err(Refusal::NameGroups);
    }
    for group in groups {
        if group.split('^').count() > 5 {
            return Err(Refusal::NameComponents);
        }
        if group.chars().count() > 64 {
            return Err(Refusal::NameGroupTooLong);
        }
    }
    Ok(())
}

fn date(value: &str) -> Result<(), Refusal> {
    if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::Date);
    }
    let number = |range: std::ops::Range<usize>| value[range].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (number(0..4), number(4..6), number(6..8));
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if (1..=days).contains(&day) { Ok(()) } else { Err(Refusal::Date) }
}

/// TM: HH, HHMM, HHMMSS, or HHMMSS with a fraction of 1 to 6 digits; 60 seconds is a leap second.
fn time(value: &str) -> Result<(), Refusal> {
    let (main, fraction) = match value.split_once('.') {
        Some((main, fraction)) => (main, Some(fraction)),
        None => (value, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let fraction_ok = fraction.is_none_or(|f| main.len() == 6 && (1..=6).contains(&f.len()) && digits(f));
    if !matches!(main.len(), 2 | 4 | 6) || !digits(main) || !fraction_ok {
        return Err(Refusal::Time);
    }
    let part = |i: usize| main.get(i..i + 2).map_or(0, |p| p.parse::<u32>().unwrap_or(99));
    if part(0) < 24 && part(2) < 60 && part(4) <= 60 { Ok(()) } else { Err(Refusal::Time) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_characters_not_bytes() {
        let name = "é".repeat(64);
        assert_eq!(Vr::LO.check(&name), Ok(()));
        assert_eq!(Vr::LO.check(&format!("{name}é")), Err(Refusal::TooLong { vr: Vr::LO, max: 64 }));
        assert_eq!(Vr::SH.check(&"語".repeat(16)), Ok(()));
        assert_eq!(Vr::SH.check(&"語".repeat(17)), Err(Refusal::TooLong { vr: Vr::SH, max: 16 }));
    }

    #[test]
    fn control_characters_and_backslashes_are_refused() {
        for value in ["A\rB", "A\nB", "A\tB", "A\u{1b}B", "A\0B", "A\u{85}B"] {
            for vr in [Vr::LO, Vr::SH, Vr::PN, Vr::AE] {
                assert_eq!(vr.check(value), Err(Refusal::Control { vr }), "{vr} {value:?}");
            }
        }
        assert_eq!(Vr::LO.check("A\\B"), Err(Refusal::Backslash { vr: Vr::LO }));
        assert_eq!(Vr::PN.check("DOE^JOHN\\ROE^JANE"), Err(Refusal::Backslash { vr: Vr::PN }));
    }

    #[test]
    fn person_names_count_per_component_group() {
        let group = format!("{}^{}", "D".repeat(40), "J".repeat(23));
        assert_eq!(Vr::PN.check(&format!("{group}={group}={group}")), Ok(()));
        assert_eq!(Vr::PN.check(&format!("{group}X")), Err(Refusal::NameGroupTooLong));
        assert_eq!(Vr::PN.check("A=B=C=D"), Err(Refusal::NameGroups));
        assert_eq!(Vr::PN.check("A^B^C^D^E"), Ok(()));
        assert_eq!(Vr::PN.check("A^B^C^D^E^F"), Err(Refusal::NameComponents));
        assert_eq!(Vr::PN.check("山田^太郎=やまだ^たろう"), Ok(()));
    }

    #[test]
    fn code_strings_and_ae_titles() {
        assert_eq!(Vr::CS.check("CT"), Ok(()));
        assert_eq!(Vr::CS.check("ISO_IR 192"), Ok(()));
        assert_eq!(Vr::CS.check("ct"), Err(Refusal::CodeString));
        assert_eq!(Vr::CS.check(&"A".repeat(17)), Err(Refusal::TooLong { vr: Vr::CS, max: 16 }));
        assert_eq!(Vr::AE.check("CT 01-a"), Ok(()));
        assert_eq!(Vr::AE.check("CTé"), Err(Refusal::NotAscii { vr: Vr::AE }));
        assert_eq!(Vr::AE.check(&"A".repeat(17)), Err(Refusal::TooLong { vr: Vr::AE, max: 16 }));
    }

    #[test]
    fn dates_times_and_uids_have_their_forms() {
        assert_eq!(Vr::DA.check("20240229"), Ok(()));
        for bad in ["20230229", "2024-02-01", "20241301", "20240100", "2024010"] {
            assert_eq!(Vr::DA.check(bad), Err(Refusal::Date), "{bad}");
        }
        for good in ["15", "1554", "155430", "155430.123456", "235960"] {
            assert_eq!(Vr::TM.check(good), Ok(()), "{good}");
        }
        for bad in ["24", "1560", "155430.", "1554.5", "15:54:30", "155430.1234567", "235961"] {
            assert_eq!(Vr::TM.check(bad), Err(Refusal::Time), "{bad}");
        }
        assert_eq!(Vr::UI.check("1.2.840.10008.5.1.4.31"), Ok(()));
        assert_eq!(Vr::UI.check("0.1"), Ok(()));
        for bad in ["1..2", "1.02", "1.2.", "abc", "1.2 "] {
            assert_eq!(Vr::UI.check(bad), Err(Refusal::Uid), "{bad}");
        }
        assert_eq!(Vr::UI.check(&"1".repeat(65)), Err(Refusal::TooLong { vr: Vr::UI, max: 64 }));
    }
}
