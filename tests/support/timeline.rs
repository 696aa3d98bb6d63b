//! The video timeline of what a receiver got: packet timestamps read with
//! ffprobe from MPEG-TS and FLV recordings, or RTP timestamps from the
//! WHIP receiver, and the gaps between them.

use std::path::Path;
use std::process::Command;

/// RTP's video clock rate in Hz.
const RTP_VIDEO_HZ: f64 = 90_000.0;

/// One video packet of a recording.
#[derive(Clone, Copy, Debug)]
pub struct VideoPacket {
    /// Presentation time in seconds.
    pub pts_s: f64,
    pub keyframe: bool,
}

/// Returns the video packets of `file` in file order.
pub fn video_packets(file: &Path) -> Vec<VideoPacket> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args(["-show_entries", "packet=pts_time,flags", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("cannot run ffprobe; run scripts/install-deps.sh");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(',');
            let pts_s = fields.next()?.parse().ok()?;
            let keyframe = fields.next()?.starts_with('K');
            Some(VideoPacket { pts_s, keyframe })
        })
        .collect()
}

/// Returns the presentation times of `packets`, sorted.
pub fn sorted_times(packets: &[VideoPacket]) -> Vec<f64> {
    let mut times: Vec<f64> = packets.iter().map(|packet| packet.pts_s).collect();
    times.sort_by(f64::total_cmp);
    times
}

/// Returns RTP timestamps as seconds from the first, unwrapped across the
/// 32-bit wrap.
pub fn rtp_seconds(timestamps: &[u32]) -> Vec<f64> {
    let Some(&first) = timestamps.first() else {
        return Vec::new();
    };
    let mut previous = first;
    let mut ticks: i64 = 0;
    timestamps
        .iter()
        .map(|&timestamp| {
            ticks += i64::from(timestamp.wrapping_sub(previous) as i32);
            previous = timestamp;
            ticks as f64 / RTP_VIDEO_HZ
        })
        .collect()
}

/// Returns the largest step between neighbours of sorted `times`, with the
/// time it starts at, or `(0.0, 0.0)` for fewer than two times.
pub fn max_gap(times: &[f64]) -> (f64, f64) {
    times
        .windows(2)
        .map(|pair| (pair[1] - pair[0], pair[0]))
        .fold(
            (0.0, 0.0),
            |largest, gap| {
                if gap.0 > largest.0 {
                    gap
                } else {
                    largest
                }
            },
        )
}

/// Seconds from the first to the last of sorted `times`.
pub fn span(times: &[f64]) -> f64 {
    match (times.first(), times.last()) {
        (Some(first), Some(last)) => last - first,
        _ => 0.0,
    }
}
