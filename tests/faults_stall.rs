//! Receivers that stop reading (SIGSTOP) and a stop signal while outputs
//! are down: the other outputs keep every frame, memory stays bounded,
//! the stalled output recovers, and SIGTERM ends the bridge in time.

mod support;

use std::time::{Duration, Instant};
use support::bridge_process::{send_signal, BridgeProcess};
use support::fault_peers::{
    check_recording, check_segments, srt_port, start_bridge, start_srt_receiver,
    wait_for_rtmp_recording, wait_until, SOURCE_ARGS, SOURCE_ID,
};
use support::nginx::Nginx;
use support::standin::Standin;

/// How long a receiver stays stopped.
const STALL: Duration = Duration::from_secs(20);

/// The maximum time a stalled output may take to stream again after
/// SIGCONT: a dial that times out (3 s) plus a backoff delay of up to 10 s.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);

/// The bridge's resident memory may grow by at most this much over its
/// level before a stall. Measured by this test (x264, 320x240, debug
/// build, 2 cores): about 79 MiB before and under 1 MiB of growth while a
/// receiver is stopped for 20 s. Every output's queue is bounded (300
/// frames), and libsrt drops what is late.
const RSS_GROWTH_BOUND_KIB: u64 = 40 * 1024;

/// The bound the README gives for a clean stop.
const STOP_BOUND: Duration = Duration::from_secs(15);

/// Samples the bridge's resident memory every half second for `period`
/// and returns the largest value in KiB.
fn peak_rss_kib(bridge: &BridgeProcess, period: Duration) -> u64 {
    let deadline = Instant::now() + period;
    let mut peak = bridge.rss_kib();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        peak = peak.max(bridge.rss_kib());
    }
    peak
}

fn srt_rtmp_args(srt_port: u16, nginx: &Nginx) -> Vec<String> {
    let mut args: Vec<String> = SOURCE_ARGS.iter().map(|arg| arg.to_string()).collect();
    args.extend([
        "--source".to_string(),
        SOURCE_ID.to_string(),
        "--output".to_string(),
        format!("srt://127.0.0.1:{srt_port}"),
        "--output".to_string(),
        nginx.rtmp_url(""),
    ]);
    args
}

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0)
}

#[test]
fn stalled_receivers_leave_others_whole() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    let nginx = Nginx::start(&standin.origin);
    let directory = tempfile::tempdir().unwrap();
    let record = directory.path().join("record");
    std::fs::create_dir(&record).unwrap();
    let received = directory.path().join("srt.ts");
    let port = srt_port();
    let srt = start_srt_receiver(&standin, port, &received);
    let mut args = srt_rtmp_args(port, &nginx);
    args.extend(["--record".to_string(), record.display().to_string()]);
    let mut bridge = start_bridge(&args, &standin);

    srt.wait_for("connected", Duration::from_secs(20));
    wait_for_rtmp_recording(&nginx, 1, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(3));
    let baseline = peak_rss_kib(&bridge, Duration::from_secs(2));

    // SRT: the receiver stops reading for 20 s.
    send_signal(srt.pid(), libc::SIGSTOP);
    let peak = peak_rss_kib(&bridge, STALL);
    send_signal(srt.pid(), libc::SIGCONT);
    let resumed = Instant::now();
    // GStreamer 1.22's srtsrc listener ends its stream when its caller is
    // gone and accepts no other, unlike an SRT server. A new receiver on
    // the same port takes its place once the old one has seen the loss.
    srt.wait_for("eos", RECOVERY_BOUND);
    srt.stop();
    let received_after = directory.path().join("srt-after.ts");
    let srt = start_srt_receiver(&standin, port, &received_after);
    srt.wait_for("connected", RECOVERY_BOUND);
    eprintln!(
        "SRT: RSS {baseline} KiB before, {peak} KiB at most while stopped; streaming again \
         {:?} after SIGCONT",
        resumed.elapsed()
    );
    assert!(
        peak <= baseline + RSS_GROWTH_BOUND_KIB,
        "RSS grew from {baseline} to {peak} KiB while the SRT receiver was stopped"
    );
    std::thread::sleep(Duration::from_secs(3));

    // RTMP: nginx stops reading for 20 s.
    let recording = nginx.recordings().last().unwrap().clone();
    send_signal(nginx.pid(), libc::SIGSTOP);
    let peak = peak_rss_kib(&bridge, STALL);
    let size = file_size(&recording);
    send_signal(nginx.pid(), libc::SIGCONT);
    let resumed = Instant::now();
    wait_until("RTMP media after SIGCONT", RECOVERY_BOUND, || {
        let latest = nginx.recordings().last().unwrap().clone();
        latest != recording || file_size(&recording) > size + 50_000
    });
    eprintln!(
        "RTMP: RSS {baseline} KiB before, {peak} KiB at most while stopped; streaming again \
         {:?} after SIGCONT ({} recordings)",
        resumed.elapsed(),
        nginx.recordings().len()
    );
    assert!(
        peak <= baseline + RSS_GROWTH_BOUND_KIB,
        "RSS grew from {baseline} to {peak} KiB while nginx was stopped"
    );
    std::thread::sleep(Duration::from_secs(4));

    let ended = bridge.terminate(STOP_BOUND);
    assert_eq!(ended.code, Some(0), "{}", bridge.log());
    srt.stop();

    // The RTMP recording that was open during the SRT stall, and the SRT
    // recording across the RTMP stall.
    check_recording(
        "RTMP across the SRT stall",
        &nginx.recordings()[0],
        30.0,
        true,
    );
    check_recording("SRT across the nginx stall", &received_after, 20.0, true);
    check_segments(&record, 45.0);
}

#[test]
fn stop_during_outage_exits_cleanly() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    // Nothing listens on these ports: every output dials, fails and backs
    // off.
    let srt = srt_port();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = closed.local_addr().unwrap().port();
    drop(closed);
    let mut args: Vec<String> = SOURCE_ARGS.iter().map(|arg| arg.to_string()).collect();
    args.extend([
        "--source".to_string(),
        SOURCE_ID.to_string(),
        "--output".to_string(),
        format!("srt://127.0.0.1:{srt}"),
        "--output".to_string(),
        format!("rtmp://127.0.0.1:{tcp}/"),
        "--output".to_string(),
        format!("http://127.0.0.1:{tcp}"),
    ]);
    let mut bridge = start_bridge(&args, &standin);
    bridge.wait_for_log(
        "connection failed; reconnecting",
        6,
        Duration::from_secs(30),
    );

    let ended = bridge.terminate(STOP_BOUND);
    let log = bridge.log();
    eprintln!(
        "stopped {:?} after SIGTERM with every output down",
        ended.took
    );
    assert_eq!(ended.code, Some(0), "{log}");
    assert!(log.contains("a stop signal arrived"), "{log}");
}

#[test]
fn stop_while_receivers_stalled_exits_cleanly() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    let nginx = Nginx::start(&standin.origin);
    let directory = tempfile::tempdir().unwrap();
    let port = srt_port();
    let srt = start_srt_receiver(&standin, port, &directory.path().join("srt.ts"));
    let mut bridge = start_bridge(&srt_rtmp_args(port, &nginx), &standin);
    srt.wait_for("connected", Duration::from_secs(20));
    wait_for_rtmp_recording(&nginx, 1, Duration::from_secs(20));

    send_signal(srt.pid(), libc::SIGSTOP);
    send_signal(nginx.pid(), libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    let ended = bridge.terminate(STOP_BOUND);
    send_signal(srt.pid(), libc::SIGCONT);
    send_signal(nginx.pid(), libc::SIGCONT);
    let log = bridge.log();
    eprintln!(
        "stopped {:?} after SIGTERM with both receivers stopped",
        ended.took
    );
    assert_eq!(ended.code, Some(0), "{log}");
}
