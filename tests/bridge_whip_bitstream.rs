//! The H.264 bitstream a WHIP receiver gets from the bridge, as the aiortc
//! receiver on loopback records it: access units that a decoder following
//! the H.264 spec splits the way the RTP marker bit does.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use support::whip_receiver::{AiortcReceiver, AiortcToken};
use support::whip_token::WHIP_AUDIENCE;

const PATH: &str = "inputs/whip-bitstream";

const NAL_SLICE: u8 = 1;
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

/// One NAL unit of an Annex-B stream: its type and whether, for a slice,
/// it is the first of its picture (first_mb_in_slice == 0).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Nal {
    nal_type: u8,
    first_slice: bool,
}

/// Splits an Annex-B stream at its start codes.
fn nal_units(stream: &[u8]) -> Vec<Nal> {
    let mut units = Vec::new();
    let mut index = 0;
    while index + 3 < stream.len() {
        if stream[index..index + 3] != [0, 0, 1] {
            index += 1;
            continue;
        }
        let header = stream[index + 3];
        // first_mb_in_slice is the slice header's first ue(v) field, and
        // ue(v) codes 0 as the single bit 1.
        let first_slice = stream.get(index + 4).is_some_and(|byte| byte & 0x80 != 0);
        units.push(Nal {
            nal_type: header & 0x1f,
            first_slice,
        });
        index += 3;
    }
    units
}

fn is_slice(nal: &Nal) -> bool {
    matches!(nal.nal_type, NAL_SLICE | NAL_IDR)
}

fn token_file(directory: &Path) -> std::path::PathBuf {
    let key = directory.join("key.pem");
    let file = directory.join("token");
    support::mint_token(&[
        "--key",
        key.to_str().unwrap(),
        "--path",
        PATH,
        "--aud",
        WHIP_AUDIENCE,
        "--out",
        file.to_str().unwrap(),
    ]);
    let owner_only = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(&file, owner_only).unwrap();
    file
}

#[test]
fn parameter_sets_only_before_pictures() {
    let _guard = support::setup();
    let directory = tempfile::tempdir().unwrap();
    let token = token_file(directory.path());
    let receiver = AiortcReceiver::start(
        &directory.path().join("recording"),
        AiortcToken::File(&token),
        &[],
    );

    // 1280x720 so that x264's sliced threads give a picture several
    // slices on a machine with two or more cores.
    let output = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(["--device", "test", "--size", "1280x720", "--gop", "1"])
        .args(["--output", &receiver.url_for(PATH)])
        .arg("--token-file")
        .arg(&token)
        .args(["--ice-address", "127.0.0.1", "--duration", "4"])
        .env_remove("TRAX_SESSION_TOKEN")
        .env_remove("TRAX_STREAM_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdin(Stdio::null())
        .output()
        .expect("the bridge binary runs");
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{log}");
    receiver.wait_for("closed", 1, std::time::Duration::from_secs(10));

    let stream = std::fs::read(receiver.session_dir(1).join("video.h264")).unwrap();
    let units = nal_units(&stream);
    let idr_slices = units.iter().filter(|nal| nal.nal_type == NAL_IDR).count();
    let idr_pictures = units
        .iter()
        .filter(|nal| nal.nal_type == NAL_IDR && nal.first_slice)
        .count();
    assert!(
        idr_slices > idr_pictures,
        "every IDR picture has one slice ({idr_slices} slices), so this test checks \
         nothing: it needs x264's sliced threads, which need two or more cores"
    );

    // SPS or PPS after a slice starts a new access unit (H.264 7.4.1.2.3),
    // so the next slice must begin a picture.
    for (index, pair) in units.windows(2).enumerate() {
        let [before, after] = pair else {
            unreachable!()
        };
        if matches!(before.nal_type, NAL_SPS | NAL_PPS) && is_slice(after) {
            assert!(
                after.first_slice,
                "NAL unit {index}: a parameter set sits between the slices of one picture"
            );
        }
    }
    let report = receiver.report(1).expect("report.json");
    assert_eq!(
        report["video"]["frames_decoded"], report["video"]["access_units"],
        "{report}"
    );
}
