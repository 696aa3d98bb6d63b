//! The recording's limits: which of the bridge's own segments to delete when
//! they take more than `--record-max-size` or are older than
//! `--record-max-age`. Files whose names are not this bridge's segment names
//! are never listed, so never deleted.

use super::name::SegmentName;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The limits a recording directory is kept within; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_size_bytes: Option<u64>,
    pub max_age: Option<Duration>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.max_size_bytes.is_none() && self.max_age.is_none()
    }
}

/// One segment file found in the recording directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSegment {
    pub name: SegmentName,
    pub path: PathBuf,
    pub bytes: u64,
    /// The time of the last write, which is the end of its recording.
    pub modified: SystemTime,
}

/// The limit a segment is deleted for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    MaxSize,
    MaxAge,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MaxSize => "--record-max-size",
            Self::MaxAge => "--record-max-age",
        }
    }
}

/// Lists this bridge's segments in `directory`, oldest (lowest sequence
/// number) first. The sequence number, unlike the time in the name, does
/// not depend on the system clock.
pub fn list(directory: &Path) -> std::io::Result<Vec<StoredSegment>> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().and_then(SegmentName::parse) else {
            continue;
        };
        // A segment deleted by someone else between the listing and here is
        // simply left out.
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if !metadata.is_file() {
            continue;
        }
        segments.push(StoredSegment {
            name,
            path: entry.path(),
            bytes: metadata.len(),
            modified: metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    segments.sort_by_key(|segment| (segment.name.sequence, segment.name.opened_unix_s));
    Ok(segments)
}

/// Selects the segments to delete, oldest first, with the limit each one
/// breaks. `segments` are sorted oldest first. The segment being written
/// (`current`) counts toward the size but is never selected.
pub fn select(
    segments: &[StoredSegment],
    current: Option<SegmentName>,
    limits: Limits,
    now: SystemTime,
) -> Vec<(usize, Reason)> {
    let mut selected = Vec::new();
    let is_current = |segment: &StoredSegment| Some(segment.name) == current;

    if let Some(max_age) = limits.max_age {
        for (index, segment) in segments.iter().enumerate() {
            let age = now.duration_since(segment.modified).unwrap_or_default();
            if !is_current(segment) && age > max_age {
                selected.push((index, Reason::MaxAge));
            }
        }
    }

    if let Some(max_size) = limits.max_size_bytes {
        let is_kept = |index: usize| !selected.iter().any(|(chosen, _)| *chosen == index);
        let mut total: u64 = (0..segments.len())
            .filter(|&index| is_kept(index))
            .map(|index| segments[index].bytes)
            .sum();
        let mut by_size = Vec::new();
        for (index, segment) in segments.iter().enumerate() {
            if total <= max_size {
                break;
            }
            if is_kept(index) && !is_current(segment) {
                total -= segment.bytes;
                by_size.push((index, Reason::MaxSize));
            }
        }
        selected.extend(by_size);
        selected.sort_by_key(|(index, _)| *index);
    }
    selected
}

/// Parses a size such as `20G`, `500M` or `1.5T`: a number with a binary
/// multiple K, M, G or T (powers of 1024), and an optional `B` or `iB` after
/// it. The multiple is required, so that `20` is not read as 20 bytes, a
/// limit that deletes every segment but the one being written.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let invalid = || {
        format!(
            "invalid size '{text}': give a number with K, M, G or T (powers of 1024), such as \
             20G or 500M"
        )
    };
    let trimmed = text.trim();
    let without_unit = trimmed
        .strip_suffix("iB")
        .or_else(|| trimmed.strip_suffix('B'))
        .unwrap_or(trimmed);
    let (number, multiple) = match without_unit.chars().last() {
        Some(letter) if letter.is_ascii_alphabetic() => {
            let power = match letter.to_ascii_uppercase() {
                'K' => 1,
                'M' => 2,
                'G' => 3,
                'T' => 4,
                _ => return Err(invalid()),
            };
            (&without_unit[..without_unit.len() - 1], 1024f64.powi(power))
        }
        _ => return Err(invalid()),
    };
    let value: f64 = number.trim().parse().map_err(|_| invalid())?;
    let bytes = value * multiple;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(bytes as u64)
}

/// Parses a duration such as `24h`, `90m`, `30s` or `7d`. A unit is
/// required, so that `24` is not read as seconds when hours were meant.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!("invalid duration '{text}': give a number with s, m, h or d, such as 24h or 90m")
    };
    let trimmed = text.trim();
    let unit = trimmed.chars().last().ok_or_else(invalid)?;
    let seconds_per_unit = match unit.to_ascii_lowercase() {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86_400.0,
        _ => return Err(invalid()),
    };
    let value: f64 = trimmed[..trimmed.len() - 1]
        .trim()
        .parse()
        .map_err(|_| invalid())?;
    let seconds = value * seconds_per_unit;
    if seconds.is_nan() || seconds < 1.0 {
        return Err(invalid());
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const NOW_S: u64 = 1_800_000_000;

    /// Builds a segment opened `opened_ago_s` before now and last written
    /// 60 s later.
    fn segment(sequence: u64, opened_ago_s: u64, bytes: u64) -> StoredSegment {
        let opened = UNIX_EPOCH + Duration::from_secs(NOW_S - opened_ago_s);
        let name = SegmentName::new(opened, sequence);
        StoredSegment {
            name,
            path: PathBuf::from(name.to_string()),
            bytes,
            modified: opened + Duration::from_secs(60),
        }
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW_S)
    }

    fn sequences(segments: &[StoredSegment], selected: &[(usize, Reason)]) -> Vec<(u64, Reason)> {
        selected
            .iter()
            .map(|(index, reason)| (segments[*index].name.sequence, *reason))
            .collect()
    }

    #[test]
    fn size_limit_deletes_oldest_first() {
        let segments = [
            segment(1, 400, 100),
            segment(2, 300, 100),
            segment(3, 200, 100),
            segment(4, 100, 100),
        ];
        let limits = |max_size_bytes| Limits {
            max_size_bytes: Some(max_size_bytes),
            max_age: None,
        };
        let current = Some(segments[3].name);
        let cases: [(u64, &[u64]); 5] = [
            (400, &[]),
            (399, &[1]),
            (250, &[1, 2]),
            (100, &[1, 2, 3]),
            // The segment being written stays even when it alone is too big.
            (50, &[1, 2, 3]),
        ];
        for (max_size, expected) in cases {
            let selected = select(&segments, current, limits(max_size), now());
            let expected: Vec<(u64, Reason)> = expected
                .iter()
                .map(|&sequence| (sequence, Reason::MaxSize))
                .collect();
            assert_eq!(sequences(&segments, &selected), expected, "{max_size}");
        }
    }

    #[test]
    fn age_limit_reads_last_write() {
        let segments = [
            segment(1, 3700, 10),
            segment(2, 3661, 10),
            segment(3, 3600, 10),
            segment(4, 60, 10),
        ];
        let limits = Limits {
            max_size_bytes: None,
            max_age: Some(Duration::from_secs(3600)),
        };
        let selected = select(&segments, None, limits, now());
        assert_eq!(
            sequences(&segments, &selected),
            [(1, Reason::MaxAge), (2, Reason::MaxAge)]
        );
    }

    #[test]
    fn age_and_size_combine() {
        let segments = [
            segment(1, 7200, 100),
            segment(2, 300, 100),
            segment(3, 200, 100),
            segment(4, 100, 100),
        ];
        let limits = Limits {
            max_size_bytes: Some(200),
            max_age: Some(Duration::from_secs(3600)),
        };
        let selected = select(&segments, Some(segments[3].name), limits, now());
        assert_eq!(
            sequences(&segments, &selected),
            [(1, Reason::MaxAge), (2, Reason::MaxSize)]
        );
    }

    #[test]
    fn current_segment_never_selected() {
        let segments = [segment(1, 7200, 1000)];
        let limits = Limits {
            max_size_bytes: Some(1),
            max_age: Some(Duration::from_secs(1)),
        };
        assert!(select(&segments, Some(segments[0].name), limits, now()).is_empty());
        assert_eq!(select(&segments, None, limits, now()).len(), 1);
    }

    #[test]
    fn sizes_parse() {
        let cases = [
            ("1K", 1 << 10),
            ("500M", 500 << 20),
            ("20G", 20 << 30),
            ("20g", 20 << 30),
            ("20GB", 20 << 30),
            ("20GiB", 20 << 30),
            ("1.5T", 3 << 39),
            ("64K", 64 << 10),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_size(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn invalid_sizes_rejected() {
        let without_multiple = ["1", "20", "500B", "20iB"];
        let other = [
            "", "G", "0", "0K", "0.1", "-5G", "20X", "twenty", "1e30T", "NaN",
        ];
        for text in without_multiple.into_iter().chain(other) {
            let error = parse_size(text).unwrap_err();
            assert!(error.contains(&format!("'{text}'")), "{error}");
        }
    }

    #[test]
    fn ages_parse() {
        let cases = [
            ("24h", 86_400),
            ("90m", 5400),
            ("30s", 30),
            ("7d", 604_800),
            ("1.5h", 5400),
            ("2H", 7200),
        ];
        for (text, seconds) in cases {
            assert_eq!(parse_age(text), Ok(Duration::from_secs(seconds)), "{text}");
        }
    }

    #[test]
    fn invalid_ages_rejected() {
        for text in ["", "24", "h", "0h", "-1h", "5w", "0.5s", "1e300d"] {
            let error = parse_age(text).unwrap_err();
            assert!(error.contains(&format!("'{text}'")), "{error}");
        }
    }
}
