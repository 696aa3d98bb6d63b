//! Parsing of RFC 3339 timestamps (`2026-12-04T17:00:00Z`,
//! `2026-12-04T18:00:00.5+01:00`) into `SystemTime`, for the API's
//! `expiresAt`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses an RFC 3339 date-time. Leap seconds (`:60`) are read as the
/// second before, as most clocks do. Returns `None` for anything that is
/// not a valid RFC 3339 date-time.
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.is_ascii() {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = &text[range];
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let separators_ok = bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't' | b' ')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !separators_ok {
        return None;
    }

    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let date_ok = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
    if !date_ok || hour > 23 || minute > 59 || second > 60 {
        return None;
    }

    let mut rest = &text[19..];
    let mut nanos: u32 = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<9}", &fraction[..digits.min(9)]);
        nanos = padded.parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset_s = parse_offset(rest)?;

    let days = days_from_civil(year, month, day);
    let local_s = days * 86_400 + hour * 3600 + minute * 60 + second.min(59);
    let utc_s = local_s - offset_s;
    let since_epoch = Duration::new(u64::try_from(utc_s).ok()?, nanos);
    Some(UNIX_EPOCH + since_epoch)
}

/// Parses `Z` or `±HH:MM` into seconds east of UTC.
fn parse_offset(text: &str) -> Option<i64> {
    if text == "Z" || text == "z" {
        return Some(0);
    }
    let bytes = text.as_bytes();
    if bytes.len() != 6 || bytes[3] != b':' {
        return None;
    }
    let sign = match bytes[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours: i64 = text[1..3].parse().ok()?;
    let minutes: i64 = text[4..6].parse().ok()?;
    let digits_ok = text[1..3]
        .bytes()
        .chain(text[4..6].bytes())
        .all(|b| b.is_ascii_digit());
    if !digits_ok || hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date, counting
/// years from March so the leap day falls at the end of the year.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(seconds: u64, nanos: u32) -> Option<SystemTime> {
        Some(UNIX_EPOCH + Duration::new(seconds, nanos))
    }

    #[test]
    fn valid_timestamps() {
        let cases = [
            ("1970-01-01T00:00:00Z", unix(0, 0)),
            ("2026-12-04T17:00:00Z", unix(1_796_403_600, 0)),
            ("2026-12-04t17:00:00z", unix(1_796_403_600, 0)),
            ("2026-12-04 17:00:00Z", unix(1_796_403_600, 0)),
            ("2026-12-04T18:00:00+01:00", unix(1_796_403_600, 0)),
            ("2026-12-04T12:30:00-04:30", unix(1_796_403_600, 0)),
            ("2026-12-04T17:00:00.5Z", unix(1_796_403_600, 500_000_000)),
            (
                "2026-12-04T17:00:00.123456789123Z",
                unix(1_796_403_600, 123_456_789),
            ),
            ("2024-02-29T00:00:00Z", unix(1_709_164_800, 0)),
            ("2000-03-01T00:00:00Z", unix(951_868_800, 0)),
            ("2016-12-31T23:59:60Z", unix(1_483_228_799, 0)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_rfc3339(text), expected, "{text}");
        }
    }

    #[test]
    fn invalid_timestamps() {
        let cases = [
            "",
            "2026-12-04",
            "2026-12-04T17:00:00",
            "2026-12-04T17:00Z",
            "2026-13-04T17:00:00Z",
            "2026-02-29T17:00:00Z",
            "2026-04-31T17:00:00Z",
            "2026-12-00T17:00:00Z",
            "2026-12-04T24:00:00Z",
            "2026-12-04T17:60:00Z",
            "2026-12-04T17:00:61Z",
            "2026-12-04T17:00:00.Z",
            "2026-12-04T17:00:00+0100",
            "2026-12-04T17:00:00+24:00",
            "2026-12-04T17:00:00 UTC",
            "+026-12-04T17:00:00Z",
            "2026/12/04T17:00:00Z",
            "1969-12-31T23:59:59Z",
            "1700000000",
            "2026-12-04T17:00:00Zé",
        ];
        for text in cases {
            assert_eq!(parse_rfc3339(text), None, "{text}");
        }
    }
}
