//! The current instant (UTC) as a DICOM date and time, for the sidecar's Instance Creation and
//! Content Date/Time.

/// One instant as DICOM DA and TM values.
pub struct Now {
    /// YYYYMMDD
    pub date: String,
    /// HHMMSS.ffffff
    pub time: String,
}

/// The current instant, UTC (the sidecar says so with Timezone Offset From UTC `+0000`).
pub fn now() -> Now {
    let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let seconds = elapsed.as_secs();
    let (year, month, day) = date_of(seconds / 86_400);
    let of_day = seconds % 86_400;
    Now {
        date: format!("{year:04}{month:02}{day:02}"),
        time: format!("{:02}{:02}{:02}.{:06}", of_day / 3600, of_day / 60 % 60, of_day % 60, elapsed.subsec_micros()),
    }
}

/// The Gregorian (year, month, day) of a count of days since 1970-01-01.
fn date_of(mut days: u64) -> (u64, u64, u64) {
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let mut year = 1970;
    loop {
        let length = if leap(year) { 366 } else { 365 };
        if days < length {
            break;
        }
        days -= length;
        year += 1;
    }
    let february = if leap(year) { 29 } else { 28 };
    let mut month = 1;
    for length in [31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] {
        if days < length {
            break;
        }
        days -= length;
        month += 1;
    }
    (year, month, days + 1)
}

#[cfg(test)]
mod tests {
    use super::date_of;

    #[test]
    fn day_counts_to_dates() {
        assert_eq!(date_of(0), (1970, 1, 1));
        assert_eq!(date_of(31), (1970, 2, 1));
        assert_eq!(date_of(19_782), (2024, 2, 29));
        assert_eq!(date_of(19_783), (2024, 3, 1));
        assert_eq!(date_of(11_016), (2000, 2, 29));
    }
}
