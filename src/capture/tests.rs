use super::*;
use crate::capture::modes::parse_list_formats_ext;
use crate::exit::ExitStatus;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use std::fs;
use std::process::Command;

const C920: &str = include_str!("../../tests/fixtures/v4l2/usb2-webcam-c920.txt");

fn request(size: Option<&str>, fps: Option<&str>, audio: &str) -> CaptureRequest {
    CaptureRequest {
        size: size.map(|s| s.parse().unwrap()),
        fps: fps.map(|f| f.parse().unwrap()),
        audio: audio.parse().unwrap(),
    }
}

fn chain(plan: &VideoPlan) -> &ChainSpec {
    match plan {
        VideoPlan::Chain(chain) => chain,
        VideoPlan::File { path } => panic!("expected a chain, got the clip {}", path.display()),
    }
}

fn audio_chain(plan: &AudioPlan) -> &ChainSpec {
    match plan {
        AudioPlan::Chain(chain) => chain,
        other => panic!("expected an audio chain, got {other:?}"),
    }
}

#[test]
fn audio_spec_parses() {
    let cases = [
        ("auto", AudioSpec::Auto),
        ("none", AudioSpec::None),
        ("hw:1", AudioSpec::Device("hw:1".into())),
        (
            "hw:CARD=C920,DEV=0",
            AudioSpec::Device("hw:CARD=C920,DEV=0".into()),
        ),
        ("default", AudioSpec::Device("default".into())),
    ];
    for (text, expected) in cases {
        let parsed: AudioSpec = text.parse().unwrap();
        assert_eq!(parsed, expected, "{text}");
        assert_eq!(parsed.to_string(), text);
    }
}

#[test]
fn invalid_alsa_name_is_usage_error() {
    for text in ["hw:1;reboot", "hw 1", "", "hw:1\"", "card/1", "hw:1\n"] {
        let error = text.parse::<AudioSpec>().unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!("'{}'", text.escape_debug())),
            "{message}"
        );
        assert!(message.contains("hw:CARD=C920,DEV=0"), "{message}");
        assert_eq!(error.exit_status(), ExitStatus::Usage, "{message}");
    }
}

#[test]
fn test_plan_defaults() {
    let plan = plan(&SourceSpec::Test, &CaptureRequest::default()).unwrap();
    let video = chain(&plan.video);
    assert_eq!(video.factories(), vec!["videotestsrc", "capsfilter"]);
    assert_eq!(
        video.elements[1].get("caps"),
        Some("video/x-raw,format=I420,width=1280,height=720,framerate=30/1")
    );
    assert_eq!(audio_chain(&plan.audio).factories(), vec!["audiotestsrc"]);
    assert_eq!(plan.size, Some(Size::new(1280, 720)));
    assert_eq!(plan.fps, Some(FrameRate::new(30, 1)));
    assert!(plan.live);
    assert_eq!(
        plan.summary,
        "test pattern (moving ball) 1280x720 at 30 fps; audio: 440 Hz sine tone"
    );
}

#[test]
fn test_plan_audio_choices() {
    let none = plan(&SourceSpec::Test, &request(None, None, "none")).unwrap();
    assert_eq!(none.audio, AudioPlan::None);
    assert!(none.summary.ends_with("audio: none"), "{}", none.summary);

    let named = plan(&SourceSpec::Test, &request(None, None, "hw:1")).unwrap();
    let alsa = audio_chain(&named.audio);
    assert_eq!(alsa.factories(), vec!["alsasrc"]);
    assert_eq!(alsa.elements[0].get("device"), Some("hw:1"));
    assert!(
        named.summary.ends_with("audio: ALSA device hw:1"),
        "{}",
        named.summary
    );
}

fn pull_caps(sink: &gst_app::AppSink, count: usize) -> Vec<gst::Caps> {
    (0..count)
        .map(|index| {
            let sample = sink
                .try_pull_sample(gst::ClockTime::from_seconds(5))
                .unwrap_or_else(|| panic!("no sample {index} within 5 s"));
            assert!(sample.buffer().is_some(), "sample {index} has no buffer");
            sample.caps().unwrap().to_owned()
        })
        .collect()
}

/// Builds the test plan's chains into a pipeline and pulls raw buffers from
/// both at the requested size and rate.
#[test]
fn test_plan_delivers_raw_buffers() {
    gst::init().unwrap();
    let plan = plan(
        &SourceSpec::Test,
        &request(Some("640x360"), Some("25"), "auto"),
    )
    .unwrap();
    let pipeline = gst::Pipeline::new();
    let (_, video_last) = chain(&plan.video)
        .build_into(pipeline.upcast_ref())
        .unwrap();
    let (_, audio_last) = audio_chain(&plan.audio)
        .build_into(pipeline.upcast_ref())
        .unwrap();
    let video_sink = gst_app::AppSink::builder().build();
    let audio_sink = gst_app::AppSink::builder().build();
    pipeline
        .add_many([
            video_sink.upcast_ref::<gst::Element>(),
            audio_sink.upcast_ref(),
        ])
        .unwrap();
    video_last.link(&video_sink).unwrap();
    audio_last.link(&audio_sink).unwrap();

    pipeline.set_state(gst::State::Playing).unwrap();
    let video_caps = pull_caps(&video_sink, 3);
    let audio_caps = pull_caps(&audio_sink, 3);
    pipeline.set_state(gst::State::Null).unwrap();

    for caps in &video_caps {
        let structure = caps.structure(0).unwrap();
        assert_eq!(structure.name(), "video/x-raw");
        assert_eq!(structure.get::<i32>("width").unwrap(), 640);
        assert_eq!(structure.get::<i32>("height").unwrap(), 360);
        assert_eq!(
            structure.get::<gst::Fraction>("framerate").unwrap(),
            gst::Fraction::new(25, 1)
        );
    }
    for caps in &audio_caps {
        assert_eq!(caps.structure(0).unwrap().name(), "audio/x-raw");
    }
}

/// Writes a one-second H.264 clip with ffmpeg, with an AAC tone when
/// `with_audio` is set.
fn make_clip(dir: &Path, name: &str, with_audio: bool) -> PathBuf {
    let path = dir.join(name);
    let mut command = Command::new("ffmpeg");
    command.args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"]);
    command.arg("testsrc=size=320x240:rate=25");
    if with_audio {
        command.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
        command.args(["-c:a", "aac"]);
    }
    command.args(["-t", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p"]);
    command.arg(&path);
    let status = command
        .status()
        .expect("ffmpeg must be installed to make test clips");
    assert!(
        status.success(),
        "ffmpeg failed to write {}",
        path.display()
    );
    path
}

#[test]
fn file_plan_with_audio() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "with audio.mp4", true);
    let spec = SourceSpec::File { path: clip.clone() };

    let plan = plan(&spec, &CaptureRequest::default()).unwrap();
    let expected_path = fs::canonicalize(&clip).unwrap();
    assert_eq!(
        plan.video,
        VideoPlan::File {
            path: expected_path.clone()
        }
    );
    assert_eq!(plan.audio, AudioPlan::FromFile);
    assert_eq!(plan.size, Some(Size::new(320, 240)));
    assert_eq!(plan.fps, Some(FrameRate::new(25, 1)));
    assert!(!plan.live);
    assert!(
        plan.summary.contains(&expected_path.display().to_string()),
        "{}",
        plan.summary
    );
    assert!(plan.summary.contains("H.264"), "{}", plan.summary);
    assert!(
        plan.summary.contains("320x240 at 25 fps"),
        "{}",
        plan.summary
    );
    assert!(
        plan.summary.ends_with("audio: from the clip"),
        "{}",
        plan.summary
    );

    let silenced = super::plan(&spec, &request(None, None, "none")).unwrap();
    assert_eq!(silenced.audio, AudioPlan::None);
    let named = super::plan(&spec, &request(None, None, "hw:2")).unwrap();
    assert_eq!(
        audio_chain(&named.audio).elements[0].get("device"),
        Some("hw:2")
    );
}

#[test]
fn file_plan_without_audio() {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "silent.mp4", false);
    let plan = plan(&SourceSpec::File { path: clip }, &CaptureRequest::default()).unwrap();
    assert_eq!(plan.audio, AudioPlan::None);
    assert_eq!(plan.size, Some(Size::new(320, 240)));
    assert!(
        plan.summary
            .ends_with("audio: none, the clip has no audio stream"),
        "{}",
        plan.summary
    );
}

#[test]
fn file_plan_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.mp4");
    let not_media = dir.path().join("notes.txt");
    fs::write(&not_media, "not a video").unwrap();
    let audio_only = dir.path().join("tone.m4a");
    let status = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine",
            "-t",
            "1",
        ])
        .arg(&audio_only)
        .status()
        .expect("ffmpeg must be installed to make test clips");
    assert!(status.success());

    let cases = [
        (missing.clone(), "not found"),
        (dir.path().to_path_buf(), "is not a regular file"),
        (not_media.clone(), "failed to inspect clip"),
        (audio_only.clone(), "has no video stream"),
    ];
    for (path, phrase) in cases {
        let error = plan(
            &SourceSpec::File { path: path.clone() },
            &CaptureRequest::default(),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains(phrase), "{message}");
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(message.contains(name), "{message}");
        assert_eq!(error.exit_status(), ExitStatus::Device, "{message}");
    }
}

#[test]
fn missing_v4l2_node_is_device_error() {
    let device = PathBuf::from("/dev/video99");
    let error = plan(
        &SourceSpec::V4l2 {
            device: device.clone(),
        },
        &CaptureRequest::default(),
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("V4L2 device /dev/video99 not found"),
        "{message}"
    );
    let existing = v4l2::list_video_nodes(Path::new("/dev"));
    if existing.is_empty() {
        assert!(
            message.contains("there are no /dev/video* nodes"),
            "{message}"
        );
    } else {
        let listed: Vec<String> = existing.iter().map(|p| p.display().to_string()).collect();
        assert!(message.contains(&listed.join(", ")), "{message}");
    }
    assert_eq!(error.exit_status(), ExitStatus::Device);
}

/// Lays out a sysfs tree where video0 and ALSA card 1 (id `C920`) are
/// interfaces of one USB device.
fn paired_sysfs() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let usb = root.path().join("devices/usb1/1-1");
    for interface in ["1-1:1.0", "1-1:1.2"] {
        fs::create_dir_all(usb.join(interface)).unwrap();
        fs::write(usb.join(interface).join("bInterfaceNumber"), "00\n").unwrap();
    }
    let link = |entry: &str, interface: &str| {
        let dir = root.path().join("class").join(entry);
        fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(usb.join(interface), dir.join("device")).unwrap();
    };
    link("video4linux/video0", "1-1:1.0");
    link("sound/card1", "1-1:1.2");
    fs::write(root.path().join("class/sound/card1/id"), "C920\n").unwrap();
    root
}

#[test]
fn v4l2_plan_pairs_usb_audio() {
    let modes = parse_list_formats_ext(C920).unwrap();
    let sysfs = paired_sysfs();
    let device = Path::new("/dev/video0");
    let plan = plan_v4l2(device, &modes, &CaptureRequest::default(), sysfs.path()).unwrap();

    let video = chain(&plan.video);
    assert_eq!(video.factories(), vec!["v4l2src", "capsfilter", "jpegdec"]);
    assert_eq!(video.elements[0].get("device"), Some("/dev/video0"));
    assert_eq!(
        video.elements[1].get("caps"),
        Some("image/jpeg,width=1920,height=1080,framerate=30/1")
    );
    let audio = audio_chain(&plan.audio);
    assert_eq!(audio.factories(), vec!["alsasrc"]);
    assert_eq!(audio.elements[0].get("device"), Some("hw:CARD=C920"));
    assert_eq!(plan.size, Some(Size::new(1920, 1080)));
    assert_eq!(plan.fps, Some(FrameRate::new(30, 1)));
    assert!(plan.live);
    assert_eq!(
        plan.summary,
        "V4L2 /dev/video0: MJPEG 1920x1080 at 30 fps, decoded by jpegdec; \
         audio: ALSA card C920 (hw:CARD=C920) on the same USB device"
    );
}

#[test]
fn v4l2_plan_without_paired_audio() {
    let modes = parse_list_formats_ext(C920).unwrap();
    let sysfs = paired_sysfs();
    let device = Path::new("/dev/video4");
    let request = request(Some("640x480"), Some("30"), "auto");
    let plan = plan_v4l2(device, &modes, &request, sysfs.path()).unwrap();
    assert_eq!(plan.audio, AudioPlan::None);
    assert_eq!(
        chain(&plan.video).factories(),
        vec!["v4l2src", "capsfilter"]
    );
    assert_eq!(
        plan.summary,
        "V4L2 /dev/video4: raw YUY2 640x480 at 30 fps; audio: none, no ALSA card on the \
         same USB device as /dev/video4 (name one with --audio)"
    );

    let silenced = plan_v4l2(
        Path::new("/dev/video0"),
        &modes,
        &super::tests::request(None, None, "none"),
        sysfs.path(),
    )
    .unwrap();
    assert_eq!(silenced.audio, AudioPlan::None);
}

#[test]
fn v4l2_plan_no_fitting_mode() {
    let modes = parse_list_formats_ext(C920).unwrap();
    let sysfs = paired_sysfs();
    let request = request(Some("1920x1080"), Some("60"), "auto");
    let error = plan_v4l2(Path::new("/dev/video0"), &modes, &request, sysfs.path()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("V4L2 device /dev/video0: no mode fits"),
        "{message}"
    );
    assert!(message.contains("change --fps"), "{message}");
    assert!(
        message.contains("\n  MJPEG 1920x1080 at 30, 24, 20, 15, 10, 7.5, 5 fps"),
        "{message}"
    );
    assert!(
        message.contains("\n  raw YUY2 1920x1080 at 5 fps"),
        "{message}"
    );
    assert_eq!(error.exit_status(), ExitStatus::Device);
}

#[test]
fn decklink_plan() {
    let plan = plan(
        &SourceSpec::Decklink { index: 1 },
        &CaptureRequest::default(),
    )
    .unwrap();
    assert_eq!(
        chain(&plan.video).factories(),
        vec!["decklinkvideosrc", "deinterlace"]
    );
    let audio = audio_chain(&plan.audio);
    assert_eq!(audio.factories(), vec!["decklinkaudiosrc"]);
    assert_eq!(audio.elements[0].get("device-number"), Some("1"));
    assert_eq!(plan.size, None);
    assert_eq!(plan.fps, None);
    assert!(plan.live);
    assert_eq!(
        plan.summary,
        "DeckLink 1: mode and connection detected from the signal, deinterlaced when \
         interlaced; audio: embedded in the signal, 2 channels"
    );

    let converted = super::plan(
        &SourceSpec::Decklink { index: 0 },
        &request(Some("1280x720"), Some("59.94"), "none"),
    )
    .unwrap();
    assert_eq!(converted.size, Some(Size::new(1280, 720)));
    assert_eq!(converted.fps, Some(FrameRate::new(60000, 1001)));
    assert_eq!(converted.audio, AudioPlan::None);
    assert!(
        converted
            .summary
            .contains(", converted to 1280x720 at 59.94 fps;"),
        "{}",
        converted.summary
    );
}

#[test]
fn avf_plan() {
    let plan = plan(
        &SourceSpec::Avf { index: 0 },
        &request(None, Some("30"), "auto"),
    )
    .unwrap();
    let video = chain(&plan.video);
    assert_eq!(video.factories(), vec!["avfvideosrc", "capsfilter"]);
    assert_eq!(video.elements[0].get("device-index"), Some("0"));
    assert_eq!(
        video.elements[1].get("caps"),
        Some("video/x-raw,framerate=30/1")
    );
    assert_eq!(audio_chain(&plan.audio).factories(), vec!["osxaudiosrc"]);
    assert_eq!(plan.size, None);
    assert_eq!(plan.fps, Some(FrameRate::new(30, 1)));
    assert_eq!(
        plan.summary,
        "AVFoundation device 0, requested 30 fps; audio: default macOS input"
    );
}

#[test]
fn libcamera_plan() {
    let spec = SourceSpec::Libcamera {
        id: Some("imx708".into()),
    };
    let plan = plan(&spec, &CaptureRequest::default()).unwrap();
    let video = chain(&plan.video);
    assert_eq!(video.factories(), vec!["libcamerasrc"]);
    assert_eq!(video.elements[0].get("camera-name"), Some("imx708"));
    assert_eq!(plan.audio, AudioPlan::None);
    assert_eq!(
        plan.summary,
        "libcamera camera imx708; audio: none, libcamera has no audio"
    );

    let first = super::plan(
        &SourceSpec::Libcamera { id: None },
        &request(None, None, "hw:0"),
    )
    .unwrap();
    assert_eq!(chain(&first.video).elements[0].get("camera-name"), None);
    assert_eq!(
        audio_chain(&first.audio).elements[0].get("device"),
        Some("hw:0")
    );
}
