//! Receivers that crash and come back while the bridge streams one encode
//! to SRT (libsrt), RTMP (nginx-rtmp) and WHIP (aiortc) and records it: the
//! killed output resumes at an IDR, and the others go on without a gap.

mod support;

use std::time::{Duration, Instant};
use support::fault_peers::{
    check_recording, check_segments, check_whip_session, output_args, srt_port, start_bridge,
    start_srt_receiver, start_whip_receiver, wait_for_rtmp_recording, wait_until,
};
use support::nginx::Nginx;
use support::standin::Standin;

/// How long a killed receiver stays down.
const DOWN: Duration = Duration::from_secs(5);

/// How long a resumed output streams before the next fault.
const SETTLE: Duration = Duration::from_secs(4);

/// The maximum time an output may take to resume once its receiver is
/// back. libsrt notices a vanished receiver after about 5 s, the WHIP
/// output after 10 s without RTCP, and a backoff delay can reach 10 s.
const RESUME_BOUND: Duration = Duration::from_secs(30);

/// The bound the README gives for a clean stop.
const STOP_BOUND: Duration = Duration::from_secs(15);

#[test]
fn killed_receivers_resume_one_at_a_time() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    let mut nginx = Nginx::start(&standin.origin);
    let directory = tempfile::tempdir().unwrap();
    let path = |name: &str| directory.path().join(name);
    for name in ["whip-before", "whip-after", "record"] {
        std::fs::create_dir(path(name)).unwrap();
    }

    let port = srt_port();
    let srt = start_srt_receiver(&standin, port, &path("srt-before.ts"));
    let whip = start_whip_receiver(&standin, 0, &path("whip-before"));
    let whip_port = whip.port;
    let mut args = output_args(port, &nginx, whip_port);
    args.extend(["--record".to_string(), path("record").display().to_string()]);
    let mut bridge = start_bridge(&args, &standin);

    srt.wait_for("connected", Duration::from_secs(20));
    wait_for_rtmp_recording(&nginx, 1, Duration::from_secs(20));
    whip.wait_for("connected", 1, Duration::from_secs(20));
    std::thread::sleep(SETTLE);

    // SRT: the receiver crashes and a new one listens on the same port.
    srt.kill();
    std::thread::sleep(DOWN);
    let srt = start_srt_receiver(&standin, port, &path("srt-after.ts"));
    let restarted = Instant::now();
    srt.wait_for("connected", RESUME_BOUND);
    eprintln!(
        "SRT resumed {:?} after the receiver came back",
        restarted.elapsed()
    );
    std::thread::sleep(SETTLE);

    // RTMP: nginx crashes and starts again with the same configuration.
    nginx.kill();
    std::thread::sleep(DOWN);
    nginx.restart();
    let took = wait_for_rtmp_recording(&nginx, 2, RESUME_BOUND);
    eprintln!("RTMP resumed {took:?} after nginx came back");
    std::thread::sleep(SETTLE);

    // WHIP: the receiver crashes and a new one listens on the same port.
    drop(whip);
    std::thread::sleep(DOWN);
    let whip = start_whip_receiver(&standin, whip_port, &path("whip-after"));
    let restarted = Instant::now();
    whip.wait_for("connected", 1, RESUME_BOUND);
    let took = wait_until("WHIP video after the restart", RESUME_BOUND, || {
        !whip.video_times(1).is_empty()
    });
    eprintln!(
        "WHIP resumed {:?} after the receiver came back",
        restarted.elapsed().max(took)
    );
    std::thread::sleep(SETTLE);

    let ended = bridge.terminate(STOP_BOUND);
    let log = bridge.log();
    assert_eq!(ended.code, Some(0), "{log}");
    assert!(!log.contains("eyJ"), "something JWT-shaped in the log");
    srt.stop();
    whip.wait_for("deleted", 1, Duration::from_secs(5));
    whip.stop();

    // The first WHIP session spans the SRT and RTMP faults.
    let whip_before = path("whip-before").join("session-1");
    check_whip_session(
        "WHIP across the SRT and RTMP faults",
        &whip_before,
        20.0,
        false,
    );
    let whip_after = path("whip-after").join("session-1");
    check_whip_session("WHIP after its restart", &whip_after, 3.0, true);
    // The restarted SRT receiver's recording spans the RTMP and WHIP faults.
    check_recording("SRT after its restart", &path("srt-after.ts"), 18.0, true);
    let recordings = nginx.recordings();
    assert_eq!(recordings.len(), 2, "{recordings:?}");
    check_recording("RTMP across the SRT fault", &recordings[0], 12.0, false);
    check_recording("RTMP after its restart", &recordings[1], 10.0, true);
    check_segments(&path("record"), 30.0);
}
