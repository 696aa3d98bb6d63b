//! Checks the `--record` options and builds the recording's settings.

use super::build::{Naming, Problem};
use crate::cli::RunArgs;
use crate::output::record::retention::{self, Limits};
use crate::output::record::RecordSettings;
use std::time::Duration;

/// The range of `--record-segment`, in seconds.
const SEGMENT_SECONDS: std::ops::RangeInclusive<f64> = 1.0..=86_400.0;

/// Returns the recording's settings, or `None` without `--record`, or
/// every problem of the options at once. The directory itself is checked
/// later, with the outputs' preflight.
pub fn settings(args: &RunArgs, name: Naming<'_>) -> Result<Option<RecordSettings>, Vec<Problem>> {
    let mut problems = Vec::new();
    if !SEGMENT_SECONDS.contains(&args.record_segment) {
        problems.push(Problem {
            key: "record_segment",
            message: format!(
                "invalid {} {}: give seconds between {} and {}, such as 60",
                name("record_segment"),
                args.record_segment,
                SEGMENT_SECONDS.start(),
                SEGMENT_SECONDS.end()
            ),
        });
    }
    let max_size_bytes = args
        .record_max_size
        .as_deref()
        .map(retention::parse_size)
        .transpose()
        .map_err(|why| {
            problems.push(Problem {
                key: "record_max_size",
                message: format!("{}: {why}", name("record_max_size")),
            })
        })
        .ok()
        .flatten();
    let max_age = args
        .record_max_age
        .as_deref()
        .map(retention::parse_age)
        .transpose()
        .map_err(|why| {
            problems.push(Problem {
                key: "record_max_age",
                message: format!("{}: {why}", name("record_max_age")),
            })
        })
        .ok()
        .flatten();

    let Some(directory) = &args.record else {
        let segment_given = args.record_segment != crate::output::record::DEFAULT_SEGMENT_SECONDS;
        let limits_given = args.record_max_size.is_some() || args.record_max_age.is_some();
        if segment_given || limits_given {
            problems.push(Problem {
                key: "record_directory",
                message: format!(
                    "{}, {} and {} apply to a recording: add {} DIR or drop them",
                    name("record_segment"),
                    name("record_max_size"),
                    name("record_max_age"),
                    name("record_directory")
                ),
            });
        }
        return if problems.is_empty() {
            Ok(None)
        } else {
            Err(problems)
        };
    };
    if directory.as_os_str().is_empty() {
        problems.push(Problem {
            key: "record_directory",
            message: format!(
                "{} needs a directory, such as /var/lib/bridge",
                name("record_directory")
            ),
        });
    }
    if !problems.is_empty() {
        return Err(problems);
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
