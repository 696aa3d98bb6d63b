//! `--print-pipeline`: the media pipeline a run would build, printed
//! instead of run. The capture is planned and the encoder selected with its
//! test encode exactly as a run does them, but nothing starts: no media
//! pipeline, no output, no network connection, no /v1 request.
//!
//! The description is the one `pipelines/*.pipeline` keep for each kind of
//! hardware, after `#` lines that state what was chosen and why.

use super::media::{self, MediaSettings};
use super::preview;
use crate::app::encode_settings;
use crate::capture::{self, modes::fps_text, AudioPlan};
use crate::config::{Config, OutputConfig};
use crate::encode::{self, GstProber, Platform};
use crate::exit::{ExitStatus, Fatal};
use crate::telemetry::http::StatusListener;
use gstreamer as gst;

/// Plans the run of `config` and prints its media pipeline on standard
/// output. Fails like a run would: exit 2 or 3 for a status address,
/// output or credential the run rejects, 4 for a device that cannot be
/// planned, 5 when no encoder passes its test encode.
pub fn print(config: &Config) -> Result<(), Fatal> {
    crate::commands::write_stdout(&describe_run(config)?)
}

/// Returns the `#` lines and the media pipeline description of the run
/// that `config` requests.
pub fn describe_run(config: &Config) -> Result<String, Fatal> {
    gst::init().map_err(|e| Fatal::new(ExitStatus::Other, e))?;
    // The run binds the status address first. The socket bound here is
    // released at once and accepts no connection.
    StatusListener::bind(config.status_listen).map_err(|e| Fatal::new(e.exit_status(), e))?;
    crate::app::preflight_without_api(config)?;
    let plan = capture::plan(&config.source, &config.capture)
        .map_err(|e| Fatal::new(e.exit_status(), e))?;
    let settings = encode_settings(config, &plan);
    let selection = encode::select(config.encoder, Platform::current(), &settings, &GstProber)
        .map_err(|e| Fatal::new(e.exit_status(), e))?;
    let whip = config.outputs.iter().any(OutputConfig::is_whip);
    let media_settings = MediaSettings {
        capture: &plan,
        looped: config.looped,
        encoder: &selection.plan,
        encode: &settings,
        audio_bitrate_kbps: config.audio_bitrate_kbps,
        opus_bitrate_kbps: whip.then_some(config.opus_bitrate_kbps),
        av_offset_ms: config.av_offset_ms,
        encoder_request: config.encoder,
    };
    let description =
        media::describe(&media_settings).map_err(|e| Fatal::new(ExitStatus::Other, e))?;

    let mut text = format!("# source: {}\n", plan.summary);
    text.push_str(&format!(
        "# encoder: {} ({}), which passed its test encode\n",
        selection.plan.factory, config.encoder
    ));
    for (_, skipped) in &selection.skipped {
        text.push_str(&format!("#   skipped {skipped}\n"));
    }
    text.push_str(&format!(
        "# encode: {} at {} fps, {} kb/s, a keyframe every {} frames, profile {}\n",
        settings.size,
        fps_text(&settings.fps),
        settings.bitrate_kbps,
        settings.gop_frames,
        settings.profile.caps_name()
    ));
    let audio = match (&plan.audio, whip) {
        (AudioPlan::None, _) => "no audio",
        (_, true) => "audio in AAC, and in Opus for WHIP",
        (_, false) => "audio in AAC",
    };
    text.push_str(&format!("# outputs: {}; {audio}\n", output_count(config)));
    text.push_str(&description);
    if config.status_listen.is_some() {
        text.push_str(&format!(
            "preview: (a tee in front of the first videoconvert) ! {}\n",
            preview::chain()
        ));
    }
    Ok(text)
}

fn output_count(config: &Config) -> String {
    let live = config.outputs.len();
    let recording = if config.record.is_some() {
        " and a recording"
    } else {
        ", no recording"
    };
    format!("{live} live{recording}")
}
