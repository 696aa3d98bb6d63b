//! Checks the `--record` options and builds the recording's settings.

use super::ConfigError;
use crate::cli::RunArgs;
use crate::output::record::retention::{self, Limits};
use crate::output::record::RecordSettings;
use std::time::Duration;

/// The range of `--record-segment`, in seconds.
const SEGMENT_SECONDS: std::ops::RangeInclusive<f64> = 1.0..=86_400.0;

/// Returns the recording's settings, or `None` without `--record`. The
/// directory itself is checked later, with the outputs' preflight.
pub fn settings(args: &RunArgs) -> Result<Option<RecordSettings>, ConfigError> {
    let invalid = |message: String| Err(ConfigError::Invalid(message));
    if !SEGMENT_SECONDS.contains(&args.record_segment) {
        return invalid(format!(
            "invalid --record-segment {}: give seconds between {} and {}, such as 60",
            args.record_segment,
            SEGMENT_SECONDS.start(),
            SEGMENT_SECONDS.end()
        ));
    }
    let max_size_bytes = args
        .record_max_size
        .as_deref()
        .map(retention::parse_size)
        .transpose()
        .map_err(|why| ConfigError::Invalid(format!("--record-max-size: {why}")))?;
    let max_age = args
        .record_max_age
        .as_deref()
        .map(retention::parse_age)
        .transpose()
        .map_err(|why| ConfigError::Invalid(format!("--record-max-age: {why}")))?;

    let Some(directory) = &args.record else {
        let segment_given = args.record_segment != crate::output::record::DEFAULT_SEGMENT_SECONDS;
        if segment_given || max_size_bytes.is_some() || max_age.is_some() {
            return invalid(
                "--record-segment, --record-max-size and --record-max-age apply to a \
                 recording: add --record DIR or drop them"
                    .into(),
            );
        }
        return Ok(None);
    };
    if directory.as_os_str().is_empty() {
        return invalid("--record needs a directory, such as --record /var/lib/bridge".into());
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
