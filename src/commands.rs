//! Subcommands other than the main run.

use crate::cli::EncodersArgs;
use crate::config::{FrameRate, Size};
use crate::encode::{self, EncodeSettings, GstProber, Platform, Prober, Profile};
use crate::exit::{ExitStatus, Fatal};
use gstreamer as gst;

/// Prints each candidate encoder for this platform and whether it passes a
/// test encode at the given size and rate.
pub fn encoders(args: &EncodersArgs) -> Result<(), Fatal> {
    let usage = |message: String| Fatal::new(ExitStatus::Usage, anyhow::anyhow!(message));
    let size: Size = args.size.parse().map_err(usage)?;
    let fps: FrameRate = args.fps.parse().map_err(usage)?;
    gst::init().map_err(|e| Fatal::new(ExitStatus::Other, e))?;

    let settings = EncodeSettings {
        size,
        fps,
        bitrate_kbps: encode::default_bitrate_kbps(size),
        gop_frames: encode::gop_frames(2.0, fps),
        profile: Profile::High,
    };
    let mut usable = 0;
    for candidate in encode::candidates(Platform::current()) {
        let plan = encode::describe(&candidate, &settings);
        match GstProber.test_encode(&plan, &settings) {
            Ok(()) => {
                usable += 1;
                println!(
                    "{:<16} {:<14} usable",
                    format!("{:?}", candidate.name).to_lowercase(),
                    candidate.factory
                );
            }
            Err(reason) => println!(
                "{:<16} {:<14} unusable: {reason}",
                format!("{:?}", candidate.name).to_lowercase(),
                candidate.factory
            ),
        }
    }
    if usable == 0 {
        return Err(Fatal::new(
            ExitStatus::Encoder,
            anyhow::anyhow!("no H.264 encoder passed its test encode at {size}"),
        ));
    }
    Ok(())
}
