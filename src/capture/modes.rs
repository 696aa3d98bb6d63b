//! V4L2 capture modes: the pixel formats, sizes and frame rates a device
//! offers, read from `v4l2-ctl --list-formats-ext` output or from the caps
//! `v4l2src` reports, and the choice of one mode for a `--size`/`--fps`
//! request.
//!
//! Policy of `select_mode`: an explicit size or rate must be met exactly
//! (29.97 and 30000/1001 are the same rate, 30 is not). Among the modes that
//! fit, larger pictures come first, then higher rates, then raw formats over
//! MJPEG, so a USB 2 camera that gives raw 1080p only at 5 fps is captured as
//! MJPEG 1080p30 and decoded. Without a rate each mode runs at its highest
//! rate up to 60 fps, and modes that reach 23.976 fps beat larger ones that
//! do not. Without a size, sizes above 1920x1080 are used only when no
//! smaller mode fits, and then the smallest of them.

use crate::config::{FrameRate, Size};
use gstreamer as gst;
use std::cmp::Ordering;
use std::fmt;

/// Largest size picked when the request names none.
pub const DEFAULT_MAX_SIZE: Size = Size::new(1920, 1080);

/// Highest rate picked when the request names none.
pub const DEFAULT_MAX_FPS: FrameRate = FrameRate::new(60, 1);

/// Without a rate request, modes that reach at least this rate win over
/// larger modes that do not. It sits just below 23.976 so that film rate
/// counts as usable.
const MIN_USABLE_FPS: f64 = 23.5;

/// Sizes offered when a device reports a range of sizes instead of a list.
const STANDARD_SIZES: &[Size] = &[
    Size::new(3840, 2160),
    Size::new(2560, 1440),
    Size::new(1920, 1080),
    Size::new(1600, 900),
    Size::new(1280, 720),
    Size::new(1024, 576),
    Size::new(960, 540),
    Size::new(720, 576),
    Size::new(720, 480),
    Size::new(640, 480),
    Size::new(640, 360),
    Size::new(320, 240),
];

/// Rates offered when a device reports a range of rates instead of a list.
const STANDARD_RATES: &[FrameRate] = &[
    FrameRate::new(60, 1),
    FrameRate::new(60000, 1001),
    FrameRate::new(50, 1),
    FrameRate::new(30, 1),
    FrameRate::new(30000, 1001),
    FrameRate::new(25, 1),
    FrameRate::new(24, 1),
    FrameRate::new(24000, 1001),
    FrameRate::new(15, 1),
    FrameRate::new(10, 1),
    FrameRate::new(5, 1),
];

/// V4L2 fourcc codes and the GStreamer raw video format `v4l2src` maps each
/// to, as in `gst_v4l2_object_v4l2fourcc_to_video_format` of
/// gst-plugins-good `sys/v4l2/gstv4l2object.c`.
const RAW_FOURCCS: &[(&str, &str)] = &[
    ("YUYV", "YUY2"),
    ("UYVY", "UYVY"),
    ("YVYU", "YVYU"),
    ("VYUY", "VYUY"),
    ("NV12", "NV12"),
    ("NM12", "NV12"),
    ("NV21", "NV21"),
    ("NV16", "NV16"),
    ("NV61", "NV61"),
    ("NV24", "NV24"),
    ("YU12", "I420"),
    ("YV12", "YV12"),
    ("422P", "Y42B"),
    ("411P", "Y41B"),
    ("RGB3", "RGB"),
    ("BGR3", "BGR"),
    ("XR24", "BGRx"),
    ("AR24", "BGRA"),
    ("XB24", "RGBx"),
    ("AB24", "RGBA"),
    ("BX24", "xRGB"),
    ("BA24", "ARGB"),
    ("RX24", "xBGR"),
    ("RA24", "ABGR"),
    ("RGBP", "RGB16"),
    ("GREY", "GRAY8"),
    ("Y16 ", "GRAY16_LE"),
];

/// Raw formats in order of preference: 4:2:0 first because H.264 encoders
/// take it without conversion.
const RAW_PREFERENCE: &[&str] = &["NV12", "I420", "YV12", "YUY2", "UYVY"];

/// Encoding of a mode's frames as they arrive from the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PixelFormat {
    /// Uncompressed frames, by GStreamer video format name (`YUY2`, `NV12`).
    Raw(String),
    /// Motion-JPEG frames, decoded by `jpegdec`.
    Mjpeg,
    /// A format bridge does not capture (H.264 from the camera, Bayer),
    /// by V4L2 fourcc or caps name. Listed in errors, never selected.
    Other(String),
}

impl PixelFormat {
    /// Maps a V4L2 fourcc as `v4l2-ctl` prints it (`YUYV`, `MJPG`).
    pub fn from_fourcc(fourcc: &str) -> Self {
        if matches!(fourcc, "MJPG" | "JPEG" | "PJPG") {
            return PixelFormat::Mjpeg;
        }
        match RAW_FOURCCS.iter().find(|(code, _)| *code == fourcc) {
            Some((_, format)) => PixelFormat::Raw(format.to_string()),
            None => PixelFormat::Other(fourcc.trim_end().to_string()),
        }
    }

    pub fn is_capturable(&self) -> bool {
        !matches!(self, PixelFormat::Other(_))
    }

    /// Preference among formats of the same size and rate; lower is better.
    fn preference_rank(&self) -> usize {
        match self {
            PixelFormat::Raw(format) => RAW_PREFERENCE
                .iter()
                .position(|preferred| preferred == format)
                .unwrap_or(RAW_PREFERENCE.len()),
            PixelFormat::Mjpeg => RAW_PREFERENCE.len() + 1,
            PixelFormat::Other(_) => RAW_PREFERENCE.len() + 2,
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PixelFormat::Raw(format) => write!(f, "raw {format}"),
            PixelFormat::Mjpeg => write!(f, "MJPEG"),
            PixelFormat::Other(name) => write!(f, "{name} (not supported)"),
        }
    }
}

/// One format and size of a device, with the rates it runs at there,
/// fastest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Mode {
    pub format: PixelFormat,
    pub size: Size,
    pub rates: Vec<FrameRate>,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.format, self.size)?;
        if self.rates.is_empty() {
            return write!(f, ", rates not listed");
        }
        let rates: Vec<String> = self.rates.iter().map(fps_text).collect();
        write!(f, " at {} fps", rates.join(", "))
    }
}

/// The mode chosen for a request, with the one rate to run it at.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    pub format: PixelFormat,
    pub size: Size,
    pub rate: FrameRate,
}

impl Selection {
    /// Caps that make `v4l2src` open the device in this mode.
    pub fn caps(&self) -> String {
        let media = match &self.format {
            PixelFormat::Raw(format) => format!("video/x-raw,format={format}"),
            PixelFormat::Mjpeg => "image/jpeg".to_string(),
            PixelFormat::Other(name) => name.clone(),
        };
        format!(
            "{media},width={},height={},framerate={}",
            self.size.width, self.size.height, self.rate
        )
    }

    pub fn needs_jpeg_decoder(&self) -> bool {
        self.format == PixelFormat::Mjpeg
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} at {} fps",
            self.format,
            self.size,
            fps_text(&self.rate)
        )
    }
}

/// The part of a request that no mode could meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// No mode has the requested size.
    Size,
    /// Modes of the right size exist, but none runs at the requested rate.
    Rate,
}

#[derive(Debug, thiserror::Error)]
pub enum ModeError {
    #[error("line {line_number} of the v4l2-ctl output is not understood: '{line}'")]
    Parse { line_number: usize, line: String },
    #[error(
        "the device offers no raw or MJPEG video mode that bridge can capture; modes offered:\n{}",
        list_modes(modes)
    )]
    NoCapturableMode { modes: Vec<Mode> },
    #[error("{}", describe_no_fit(*mismatch, *size, *fps, modes))]
    NoFit {
        mismatch: Mismatch,
        size: Option<Size>,
        fps: Option<FrameRate>,
        modes: Vec<Mode>,
    },
}

/// Picks the mode for a request, or explains with every mode listed why none
/// fits. See the module documentation for the policy.
pub fn select_mode(
    modes: &[Mode],
    size: Option<Size>,
    fps: Option<FrameRate>,
) -> Result<Selection, ModeError> {
    let capturable: Vec<&Mode> = modes
        .iter()
        .filter(|mode| mode.format.is_capturable() && !mode.rates.is_empty())
        .collect();
    if capturable.is_empty() {
        return Err(ModeError::NoCapturableMode {
            modes: modes.to_vec(),
        });
    }
    let no_fit = |mismatch| ModeError::NoFit {
        mismatch,
        size,
        fps,
        modes: modes.to_vec(),
    };

    let tiers = size_tiers(&capturable, size);
    if tiers.iter().all(Vec::is_empty) {
        return Err(no_fit(Mismatch::Size));
    }
    tiers
        .iter()
        .enumerate()
        .find_map(|(index, tier)| best_in(tier, fps, index > 0))
        .ok_or_else(|| no_fit(Mismatch::Rate))
}

/// The best mode of `tier` at the requested rate (or its default rate), if
/// any mode of the tier runs at that rate. `above_default_size` makes
/// smaller sizes win, so the mode closest to `DEFAULT_MAX_SIZE` is taken.
fn best_in(tier: &[&Mode], fps: Option<FrameRate>, above_default_size: bool) -> Option<Selection> {
    let candidates = tier.iter().filter_map(|mode| {
        let rate = match fps {
            Some(requested) => mode.rates.iter().find(|rate| rate.matches(&requested)),
            None => default_rate(&mode.rates),
        };
        rate.map(|rate| Selection {
            format: mode.format.clone(),
            size: mode.size,
            rate: *rate,
        })
    });
    let mut best: Option<Selection> = None;
    for candidate in candidates {
        let better = match &best {
            None => true,
            Some(current) => compare(&candidate, current, above_default_size) == Ordering::Greater,
        };
        if better {
            best = Some(candidate);
        }
    }
    best
}

/// The modes to choose from, in tiers tried in order: exactly the requested
/// size, or without a request those up to `DEFAULT_MAX_SIZE` and then the
/// larger ones (a 4K camera whose 60 fps modes are all above 1080p still
/// meets `--fps 60`).
fn size_tiers<'a>(modes: &[&'a Mode], size: Option<Size>) -> Vec<Vec<&'a Mode>> {
    if let Some(size) = size {
        return vec![modes.iter().copied().filter(|m| m.size == size).collect()];
    }
    let (within, above): (Vec<&Mode>, Vec<&Mode>) = modes.iter().copied().partition(|m| {
        m.size.width <= DEFAULT_MAX_SIZE.width && m.size.height <= DEFAULT_MAX_SIZE.height
    });
    vec![within, above]
}

/// The highest rate up to `DEFAULT_MAX_FPS`, or the lowest rate when all are
/// faster.
fn default_rate(rates: &[FrameRate]) -> Option<&FrameRate> {
    let limit = DEFAULT_MAX_FPS.as_f64() * 1.0002;
    let within = rates
        .iter()
        .filter(|rate| rate.as_f64() <= limit)
        .max_by(|a, b| a.as_f64().total_cmp(&b.as_f64()));
    within.or_else(|| {
        rates
            .iter()
            .min_by(|a, b| a.as_f64().total_cmp(&b.as_f64()))
    })
}

/// Orders two candidates; `Greater` means `a` is the better choice.
fn compare(a: &Selection, b: &Selection, smaller_first: bool) -> Ordering {
    let usable = |s: &Selection| s.rate.as_f64() >= MIN_USABLE_FPS;
    let rate_order = if a.rate.matches(&b.rate) {
        Ordering::Equal
    } else {
        a.rate.as_f64().total_cmp(&b.rate.as_f64())
    };
    let size_order = if smaller_first {
        b.size.pixels().cmp(&a.size.pixels())
    } else {
        a.size.pixels().cmp(&b.size.pixels())
    };
    usable(a)
        .cmp(&usable(b))
        .then(size_order)
        .then(rate_order)
        .then(b.format.preference_rank().cmp(&a.format.preference_rank()))
}

fn describe_no_fit(
    mismatch: Mismatch,
    size: Option<Size>,
    fps: Option<FrameRate>,
    modes: &[Mode],
) -> String {
    let mut request = Vec::new();
    if let Some(size) = size {
        request.push(format!("--size {size}"));
    }
    if let Some(fps) = fps {
        request.push(format!("--fps {}", fps_text(&fps)));
    }
    let fix = match mismatch {
        Mismatch::Size => match size {
            Some(size) => {
                format!("no mode is {size}; change --size to a size listed below, or leave it out")
            }
            None => "no mode has a usable size; give --size with a size listed below".to_string(),
        },
        Mismatch::Rate => match size {
            Some(size) => format!(
                "no {size} mode runs at that rate; change --fps to a rate listed for {size}, \
                 or change --size"
            ),
            None => "no mode runs at that rate; change --fps to a rate listed below, \
                     or leave it out"
                .to_string(),
        },
    };
    format!(
        "no mode fits {}: {fix}. Modes offered:\n{}",
        request.join(" "),
        list_modes(modes)
    )
}

/// Formats one indented line per mode, in the device's order.
pub fn list_modes(modes: &[Mode]) -> String {
    let lines: Vec<String> = modes.iter().map(|mode| format!("  {mode}")).collect();
    lines.join("\n")
}

/// Formats a rate as people write it: `30`, `29.97`, `7.5`.
pub fn fps_text(rate: &FrameRate) -> String {
    if rate.denominator == 1 {
        return rate.numerator.to_string();
    }
    let text = format!("{:.3}", rate.as_f64());
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Reads the output of `v4l2-ctl --list-formats-ext`, in the current layout
/// (`[0]: 'YUYV' (YUYV 4:2:2)`) and the older one (`Pixel Format: 'YUYV'`).
///
/// v4l2-ctl prints rates rounded to three decimals, so `29.970` is read as
/// 30000/1001, the rate the driver and `v4l2src` report. A stepwise or
/// continuous size range becomes one mode at its largest size, without rates,
/// because v4l2-ctl lists no intervals for ranges.
pub fn parse_list_formats_ext(text: &str) -> Result<Vec<Mode>, ModeError> {
    let mut modes: Vec<Mode> = Vec::new();
    let mut format: Option<PixelFormat> = None;
    for (index, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim();
        let parse_error = || ModeError::Parse {
            line_number: index + 1,
            line: line.to_string(),
        };
        if let Some(fourcc) = format_line_fourcc(line) {
            format = Some(PixelFormat::from_fourcc(fourcc));
        } else if let Some(rest) = line.strip_prefix("Size: ") {
            let format = format.clone().ok_or_else(parse_error)?;
            let size = parse_size_line(rest).ok_or_else(parse_error)?;
            modes.push(Mode {
                format,
                size,
                rates: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("Interval: ") {
            let mode = modes.last_mut().ok_or_else(parse_error)?;
            let rates = parse_interval_line(rest).ok_or_else(parse_error)?;
            mode.rates.extend(rates);
        }
    }
    for mode in &mut modes {
        sort_rates(&mut mode.rates);
    }
    Ok(modes)
}

/// Extracts the fourcc of a format header line, in either v4l2-ctl layout.
fn format_line_fourcc(line: &str) -> Option<&str> {
    let quoted = if line.starts_with('[') && line.contains("]: '") {
        line.split_once("]: '")?.1
    } else {
        line.strip_prefix("Pixel Format:")?
            .trim_start()
            .strip_prefix('\'')?
    };
    quoted.split_once('\'').map(|(fourcc, _)| fourcc)
}

/// Parses `Discrete 1920x1080`, or the largest size of
/// `Stepwise 16x16 - 1920x1080 with step 2/2`.
fn parse_size_line(rest: &str) -> Option<Size> {
    if let Some(size) = rest.strip_prefix("Discrete ") {
        return parse_dimensions(size.trim());
    }
    let range = rest
        .strip_prefix("Stepwise ")
        .or_else(|| rest.strip_prefix("Continuous "))?;
    let (_, max) = range.split_once(" - ")?;
    let max = max.split_whitespace().next()?;
    parse_dimensions(max)
}

fn parse_dimensions(text: &str) -> Option<Size> {
    let (width, height) = text.split_once('x')?;
    Some(Size::new(width.parse().ok()?, height.parse().ok()?))
}

/// Parses `Discrete 0.033s (30.000 fps)`, or a range such as
/// `Stepwise 0.033s - 1.000s with step 0.000s (1.000-30.000 fps)`.
fn parse_interval_line(rest: &str) -> Option<Vec<FrameRate>> {
    let inside = rest.rsplit_once('(')?.1.strip_suffix(" fps)")?;
    if rest.starts_with("Discrete ") {
        return Some(vec![rate_from_fps_text(inside)?]);
    }
    let (min, max) = inside.split_once('-')?;
    let min_fps: f64 = min.trim().parse().ok()?;
    let max = rate_from_fps_text(max)?;
    Some(rates_in_range(min_fps, max))
}

/// Recovers the exact rate behind a three-decimal fps value: an integer, an
/// NTSC rate (N×1000/1001) or the value in thousandths.
fn rate_from_fps_text(text: &str) -> Option<FrameRate> {
    let fps: f64 = text.trim().parse().ok()?;
    if !fps.is_finite() || fps <= 0.0 {
        return None;
    }
    let tolerance = 0.0015;
    let whole = fps.round();
    if (fps - whole).abs() < tolerance && whole >= 1.0 {
        return Some(FrameRate::new(whole as u32, 1));
    }
    let ntsc_base = (fps * 1.001).round();
    if ntsc_base >= 1.0 && (fps - ntsc_base * 1000.0 / 1001.0).abs() < tolerance {
        return Some(FrameRate::new(ntsc_base as u32 * 1000, 1001));
    }
    let thousandths = (fps * 1000.0).round() as u32;
    let divisor = gcd(thousandths, 1000);
    Some(FrameRate::new(thousandths / divisor, 1000 / divisor))
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

/// Lists the standard rates between `min_fps` and `max`, plus `max` itself,
/// fastest first.
fn rates_in_range(min_fps: f64, max: FrameRate) -> Vec<FrameRate> {
    let (low, high) = (min_fps * 0.9998, max.as_f64() * 1.0002);
    let mut rates: Vec<FrameRate> = STANDARD_RATES
        .iter()
        .copied()
        .filter(|rate| (low..=high).contains(&rate.as_f64()))
        .collect();
    if max.as_f64() <= 240.0 && !rates.iter().any(|rate| rate.matches(&max)) {
        rates.push(max);
    }
    sort_rates(&mut rates);
    rates
}

fn sort_rates(rates: &mut Vec<FrameRate>) {
    rates.sort_by(|a, b| b.as_f64().total_cmp(&a.as_f64()));
    rates.dedup();
}

/// Reads the modes from the caps `v4l2src` reports for an open device. Size
/// and rate ranges become the standard sizes and rates inside them.
/// Structures with the `format:Interlaced` caps feature (the
/// `interlace-mode=alternate` copies `v4l2src` adds) are skipped because they
/// repeat a progressive structure.
pub fn modes_from_caps(caps: &gst::CapsRef) -> Vec<Mode> {
    let mut modes: Vec<Mode> = Vec::new();
    for (structure, features) in caps.iter_with_features() {
        if features.contains("format:Interlaced") {
            continue;
        }
        let formats = formats_of(structure);
        let sizes = sizes_of(structure);
        let rates = structure
            .value("framerate")
            .map(rates_of_value)
            .unwrap_or_default();
        for format in &formats {
            for size in &sizes {
                add_mode(&mut modes, format, *size, &rates);
            }
        }
    }
    for mode in &mut modes {
        sort_rates(&mut mode.rates);
    }
    modes
}

fn add_mode(modes: &mut Vec<Mode>, format: &PixelFormat, size: Size, rates: &[FrameRate]) {
    match modes
        .iter_mut()
        .find(|mode| &mode.format == format && mode.size == size)
    {
        Some(mode) => mode.rates.extend_from_slice(rates),
        None => modes.push(Mode {
            format: format.clone(),
            size,
            rates: rates.to_vec(),
        }),
    }
}

fn formats_of(structure: &gst::StructureRef) -> Vec<PixelFormat> {
    match structure.name().as_str() {
        "image/jpeg" => vec![PixelFormat::Mjpeg],
        "video/x-raw" => {
            let Ok(value) = structure.value("format") else {
                return Vec::new();
            };
            let names: Vec<String> = match value.get::<String>() {
                Ok(name) => vec![name],
                Err(_) => value
                    .get::<gst::List>()
                    .map(|list| list.iter().filter_map(|v| v.get::<String>().ok()).collect())
                    .unwrap_or_default(),
            };
            names.into_iter().map(PixelFormat::Raw).collect()
        }
        other => vec![PixelFormat::Other(other.to_string())],
    }
}

fn sizes_of(structure: &gst::StructureRef) -> Vec<Size> {
    if let (Ok(width), Ok(height)) = (
        structure.get::<i32>("width"),
        structure.get::<i32>("height"),
    ) {
        return match (u32::try_from(width), u32::try_from(height)) {
            (Ok(width), Ok(height)) => vec![Size::new(width, height)],
            _ => Vec::new(),
        };
    }
    let range = |field| {
        structure
            .get::<i32>(field)
            .map(|value| gst::IntRange::with_step(value, value, 1))
            .or_else(|_| structure.get::<gst::IntRange<i32>>(field))
            .ok()
    };
    let (Some(widths), Some(heights)) = (range("width"), range("height")) else {
        return Vec::new();
    };
    let fits = |value: u32, range: &gst::IntRange<i32>| {
        let value = i64::from(value);
        let (min, max, step) = (
            i64::from(range.min()),
            i64::from(range.max()),
            i64::from(range.step().max(1)),
        );
        (min..=max).contains(&value) && (value - min) % step == 0
    };
    let mut sizes: Vec<Size> = STANDARD_SIZES
        .iter()
        .copied()
        .filter(|size| fits(size.width, &widths) && fits(size.height, &heights))
        .collect();
    if let (Ok(width), Ok(height)) = (u32::try_from(widths.max()), u32::try_from(heights.max())) {
        let largest = Size::new(width, height);
        if width <= 7680 && height <= 4320 && !sizes.contains(&largest) {
            sizes.insert(0, largest);
        }
    }
    sizes
}

fn rates_of_value(value: &gst::glib::SendValue) -> Vec<FrameRate> {
    if let Ok(fraction) = value.get::<gst::Fraction>() {
        return rate_of_fraction(fraction).into_iter().collect();
    }
    if let Ok(list) = value.get::<gst::List>() {
        return list.iter().flat_map(rates_of_value).collect();
    }
    if let Ok(range) = value.get::<gst::FractionRange>() {
        let min = range.min();
        let min_fps = f64::from(min.numer()) / f64::from(min.denom().max(1));
        return match rate_of_fraction(range.max()) {
            Some(max) => rates_in_range(min_fps, max),
            None => Vec::new(),
        };
    }
    Vec::new()
}

fn rate_of_fraction(fraction: gst::Fraction) -> Option<FrameRate> {
    let numerator = u32::try_from(fraction.numer()).ok()?;
    let denominator = u32::try_from(fraction.denom()).ok()?;
    (numerator > 0 && denominator > 0).then(|| FrameRate::new(numerator, denominator))
}

#[cfg(test)]
mod tests;
