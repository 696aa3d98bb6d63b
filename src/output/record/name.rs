//! Segment file names: `bridge-20261204T185900Z-000001.ts`, the UTC second
//! the segment was opened and a sequence number. Sorted as text, the names
//! of one directory are in recording order unless the system clock stepped
//! back. The sequence number keeps that order even then.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

const PREFIX: &str = "bridge-";
const EXTENSION: &str = ".ts";

/// Digits the sequence number is padded to; larger numbers get more.
const SEQUENCE_DIGITS: usize = 6;

const SECONDS_PER_DAY: u64 = 86_400;

/// The name of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentName {
    /// Seconds since the Unix epoch (UTC) when the segment was opened.
    pub opened_unix_s: u64,
    pub sequence: u64,
}

impl SegmentName {
    pub fn new(opened: SystemTime, sequence: u64) -> Self {
        let opened_unix_s = opened
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or(0);
        Self {
            opened_unix_s,
            sequence,
        }
    }

    /// Parses a file name this bridge wrote. Returns `None` for any other
    /// name, so a directory's other files are never taken for segments.
    pub fn parse(file_name: &str) -> Option<Self> {
        let stem = file_name.strip_prefix(PREFIX)?.strip_suffix(EXTENSION)?;
        let (stamp, sequence) = stem.split_once('-')?;
        let all_digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(sequence) || sequence.len() < SEQUENCE_DIGITS {
            return None;
        }
        let name = Self {
            opened_unix_s: parse_stamp(stamp)?,
            sequence: sequence.parse().ok()?,
        };
        // Formatting back rejects what parsing let through: a month 13, an
        // extra leading zero.
        (name.to_string() == file_name).then_some(name)
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.opened_unix_s / SECONDS_PER_DAY;
        let second_of_day = self.opened_unix_s % SECONDS_PER_DAY;
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{PREFIX}{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z-{:0width$}{EXTENSION}",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60,
            self.sequence,
            width = SEQUENCE_DIGITS,
        )
    }
}

/// Parses `YYYYMMDDTHHMMSSZ` into seconds since the Unix epoch.
fn parse_stamp(stamp: &str) -> Option<u64> {
    let bytes = stamp.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = stamp.get(range)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    if year < 1970 || !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second)
}

fn is_leap_year(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_in_year(year: u64) -> u64 {
    if is_leap_year(year) {
        366
    } else {
        365
    }
}

/// Returns the date `days` days after 1970-01-01. A year at a time is fast
/// enough for dates within a few centuries, which is all a file name needs.
fn civil_from_days(mut days: u64) -> (u64, u64, u64) {
    let mut year = 1970;
    while days >= days_in_year(year) {
        days -= days_in_year(year);
        year += 1;
    }
    let mut month = 1;
    while days >= days_in_month(year, month) {
        days -= days_in_month(year, month);
        month += 1;
    }
    (year, month, days + 1)
}

/// Returns the days from 1970-01-01 to a valid date from 1970 on.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let years: u64 = (1970..year).map(days_in_year).sum();
    let months: u64 = (1..month).map(|m| days_in_month(year, m)).sum();
    years + months + day - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn name(unix_s: u64, sequence: u64) -> SegmentName {
        SegmentName::new(UNIX_EPOCH + Duration::from_secs(unix_s), sequence)
    }

    #[test]
    fn names_format_utc_and_sequence() {
        let cases = [
            (0, 1, "bridge-19700101T000000Z-000001.ts"),
            (1_796_410_740, 1, "bridge-20261204T185900Z-000001.ts"),
            (1_709_164_800, 42, "bridge-20240229T000000Z-000042.ts"),
            (951_868_799, 7, "bridge-20000229T235959Z-000007.ts"),
            (
                1_735_689_599,
                1_234_567,
                "bridge-20241231T235959Z-1234567.ts",
            ),
        ];
        for (unix_s, sequence, expected) in cases {
            assert_eq!(name(unix_s, sequence).to_string(), expected);
        }
    }

    #[test]
    fn names_parse_back() {
        for unix_s in [0, 951_868_799, 1_709_164_800, 1_796_410_740, 4_102_444_800] {
            let original = name(unix_s, 17);
            let parsed = SegmentName::parse(&original.to_string());
            assert_eq!(parsed, Some(original), "{original}");
        }
    }

    #[test]
    fn foreign_names_rejected() {
        let cases = [
            "notes.txt",
            "bridge-20261204T185900Z-000001.mp4",
            "bridge-20261204T185900Z-1.ts",
            "bridge-20261204T185900Z-0000001.ts",
            "bridge-20261204T185900Z-00000a.ts",
            "bridge-20261304T185900Z-000001.ts",
            "bridge-20260230T185900Z-000001.ts",
            "bridge-20261204T245900Z-000001.ts",
            "bridge-20261204 185900Z-000001.ts",
            "bridge-20261204T185900-000001.ts",
            "other-20261204T185900Z-000001.ts",
            "bridge-20261204T185900Z-000001.ts.partial",
            ".bridge-20261204T185900Z-000001.ts",
        ];
        for file_name in cases {
            assert_eq!(SegmentName::parse(file_name), None, "{file_name}");
        }
    }

    #[test]
    fn names_sort_as_text_in_time_order() {
        let names = [name(100, 9), name(200, 2), name(200, 3), name(86_400, 1)];
        let texts: Vec<String> = names.iter().map(ToString::to_string).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
    }
}
