//! New UIDs under the site's organisation root: the root, then one component made of the time
//! in milliseconds followed by random digits (WASI randomness) up to the 64-character limit.

/// The root used when the plugin's `uid_root` setting is absent (the host's own root).
pub const DEFAULT_ROOT: &str = "2.25.329628117552550639259218041455443066116";

/// Fewest random digits a UID must carry after the time: roots longer than that allows are refused.
const MIN_RANDOM_DIGITS: usize = 6;
const TIME_DIGITS: usize = 13;

/// Checks a root: digits and dots, no empty or zero-led component, short enough to leave room.
pub fn check_root(root: &str) -> Result<(), String> {
    let room = 64usize.saturating_sub(root.len() + 1);
    if room < TIME_DIGITS + MIN_RANDOM_DIGITS {
        return Err(format!(
            "uid_root `{root}` is too long: it leaves {room} of the {} digits a unique UID needs",
            TIME_DIGITS + MIN_RANDOM_DIGITS
        ));
    }
    let valid =
        root.split('.').all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) && (c == "0" || !c.starts_with('0')));
    if valid { Ok(()) } else { Err(format!("uid_root `{root}` is not a UID root (digits and dots, no leading zeros)")) }
}

/// A new UID under `root` (checked with [`check_root`]).
pub fn new_uid(root: &str) -> Result<String, String> {
    let room = 64 - root.len() - 1;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .map_err(|e| format!("the clock is before 1970: {e}"))?;
    let mut digits = millis.to_string();
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|e| format!("no randomness: {e}"))?;
    let mut pool = random.chunks(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
    let mut word = 0u64;
    let mut left = 0;
    while digits.len() < room {
        if left == 0 {
            word = pool.next().ok_or("not enough randomness")?;
            left = 18; // 10^18 < 2^64: 18 nearly uniform decimal digits per word
        }
        digits.push(char::from(b'0' + (word % 10) as u8));
        word /= 10;
        left -= 1;
    }
    Ok(format!("{root}.{digits}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_fill_the_room_under_the_root_and_differ() {
        check_root(DEFAULT_ROOT).unwrap();
        let (a, b) = (new_uid(DEFAULT_ROOT).unwrap(), new_uid(DEFAULT_ROOT).unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.starts_with(&format!("{DEFAULT_ROOT}.")));
        assert_ne!(a, b);
        let short = new_uid("1.2.3").unwrap();
        assert_eq!(short.len(), 64);
        assert!(!short["1.2.3.".len()..].starts_with('0'));
    }

    #[test]
    fn bad_roots_are_refused() {
        for root in ["", "1..2", "1.02", "1.a", "2.25.3296281175525506392592180414554430661161234"] {
            assert!(check_root(root).is_err(), "{root}");
        }
    }
}
