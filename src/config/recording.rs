//! Checks the `--record` options and builds the recording's settings.

use super::build::{Naming, Problem};
use crate::cli::RunArgs;
use crate::output::record::retention::{self, Limits};
use crate::output::record::RecordSettings;
use std::time::Duration;

/// The range of `--record-segment`, in seconds.
const SEGMENT_SECONDS: std::ops::RangeInclusive<f64> = 1.0..=86_400.0;

/// Returns the recording's settings, or `None` without `--record`. The
/// directory itself is checked later, with the outputs' preflight.
pub fn settings(args: &RunArgs, name: Naming<'_>) -> Result<Option<RecordSettings>, Problem> {
    let invalid = |key: &'static str, message: String| Err(Problem { key, message });
    if !SEGMENT_SECONDS.contains(&args.record_segment) {
        return invalid(
            "record_segment",
            format!(
                "invalid {} {}: give seconds between {} and {}, such as 60",
                name("record_segment"),
                args.record_segment,
                SEGMENT_SECONDS.start(),
                SEGMENT_SECONDS.end()
            ),
        );
    }
    let max_size_bytes = args
        .record_max_size
        .as_deref()
        .map(retention::parse_size)
        .transpose()
        .map_err(|why| Problem {
            key: "record_max_size",
            message: format!("{}: {why}", name("record_max_size")),
        })?;
    let max_age = args
        .record_max_age
        .as_deref()
        .map(retention::parse_age)
        .transpose()
        .map_err(|why| Problem {
            key: "record_max_age",
            message: format!("{}: {why}", name("record_max_age")),
        })?;

    let Some(directory) = &args.record else {
        let segment_given = args.record_segment != crate::output::record::DEFAULT_SEGMENT_SECONDS;
        if segment_given || max_size_bytes.is_some() || max_age.is_some() {
            return invalid(
                "record_directory",
                format!(
                    "{}, {} and {} apply to a recording: add {} DIR or drop them",
                    name("record_segment"),
                    name("record_max_size"),
                    name("record_max_age"),
                    name("record_directory")
                ),
            );
        }
        return Ok(None);
    };
    if directory.as_os_str().is_empty() {
        return invalid(
            "record_directory",
            format!(
                "{} needs a directory, such as /var/lib/bridge",
                name("record_directory")
            ),
        );
    }
    Ok(Some(RecordSettings {
        directory: directory.clone(),
        segment_length: Duration::from_secs_f64(args.record_segment),
        limits: Limits {
            max_size_bytes,
            max_age,
        },
    }))
}
