//! Thirty forced reconnects per protocol in one run: each receiver drops
//! the bridge's connection about a second after it starts. The bridge's
//! memory, thread count and open file descriptors must not grow with the
//! number of cycles.

mod support;

use std::time::{Duration, Instant};
use support::fault_peers::{srt_port, start_bridge, SOURCE_ARGS, SOURCE_ID};
use support::receiver::Receiver;
use support::rtmp_server::{RtmpServer, Verdict};
use support::standin::Standin;
use support::whip_receiver::{AiortcReceiver, AiortcToken};

const CYCLES: usize = 30;

/// Cycles after which the first measurement window starts, so that
/// one-time allocations (encoder, first session of each kind) are done.
const WARM_UP_CYCLES: usize = 5;

/// Audio and video messages an RTMP session gets before the server
/// closes it: about a second of 30 fps video with its AAC audio.
const RTMP_TAGS_PER_SESSION: usize = 75;

/// The maximum time for every protocol to go through `CYCLES` cycles.
const CYCLES_BOUND: Duration = Duration::from_secs(180);

/// Growth allowed from the first measurement window to the last. Measured
/// by this test (x264, 320x240, debug build, 2 cores): the peak RSS grew
/// from about 97.7 to 98.9 MiB and the peak thread count from 41 to 43
/// between cycles 5-15 and 20-30. The bounds leave room for allocator
/// noise, not for a leak that grows with every cycle.
const RSS_GROWTH_BOUND_KIB: u64 = 30 * 1024;
const THREAD_GROWTH_BOUND: u64 = 6;

/// Growth of the open file descriptors allowed between the same windows.
/// Each session opens descriptors, such as its socket and, for RTMP, the
/// epoll and event descriptors of its tokio runtime. One of them leaked
/// per session adds about 15 per protocol between the windows. The rest
/// of the allowance covers sessions that are open when a sample is taken.
const FD_GROWTH_BOUND: u64 = 8;

/// One reading of /proc/PID/status with the cycles done so far.
struct Sample {
    cycles: usize,
    rss_kib: u64,
    threads: u64,
    open_fds: u64,
}

/// Returns the largest RSS, thread count and open file descriptor count
/// among samples with cycles in `range`.
fn peaks(samples: &[Sample], range: std::ops::Range<usize>) -> (u64, u64, u64) {
    let window: Vec<&Sample> = samples
        .iter()
        .filter(|sample| range.contains(&sample.cycles))
        .collect();
    assert!(!window.is_empty(), "no sample within cycles {range:?}");
    let rss = window.iter().map(|sample| sample.rss_kib).max().unwrap();
    let threads = window.iter().map(|sample| sample.threads).max().unwrap();
    let open_fds = window.iter().map(|sample| sample.open_fds).max().unwrap();
    (rss, threads, open_fds)
}

#[test]
fn reconnect_cycles_keep_memory_and_threads_flat() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    let directory = tempfile::tempdir().unwrap();
    let port = srt_port();
    let received = directory.path().join("srt.ts");
    let srt = Receiver::start(
        port,
        &[
            "--jwks-url",
            &standin.jwks_url(),
            "--output",
            received.to_str().unwrap(),
            "--drop-after-s",
            "1",
        ],
    );
    let rtmp = RtmpServer::start(|_| Verdict::AcceptThenClose {
        after_tags: RTMP_TAGS_PER_SESSION,
    });
    let whip = AiortcReceiver::start(
        directory.path(),
        AiortcToken::Jwks(&standin.jwks_url()),
        &["--close-after-s", "1"],
    );

    let mut args: Vec<String> = SOURCE_ARGS.iter().map(|arg| arg.to_string()).collect();
    args.extend([
        "--source".to_string(),
        SOURCE_ID.to_string(),
        "--output".to_string(),
        format!("srt://127.0.0.1:{port}"),
        "--output".to_string(),
        format!("rtmp://127.0.0.1:{}/", rtmp.port),
        "--output".to_string(),
        format!("http://127.0.0.1:{}", whip.port),
        "--ice-address".to_string(),
        "127.0.0.1".to_string(),
        "--reconnect-max-delay".to_string(),
        "0.5".to_string(),
    ]);
    let mut bridge = start_bridge(&args, &standin);

    let counts = || {
        let whip_sessions = whip
            .events()
            .iter()
            .filter(|event| event["event"] == "connected")
            .count();
        [
            srt.events_named("connected").len(),
            rtmp.accepted(),
            whip_sessions,
        ]
    };
    let started = Instant::now();
    let mut samples = Vec::new();
    loop {
        let done = counts();
        let cycles = *done.iter().min().unwrap();
        samples.push(Sample {
            cycles,
            rss_kib: bridge.rss_kib(),
            threads: bridge.threads(),
            open_fds: bridge.open_fds(),
        });
        if cycles > CYCLES {
            break;
        }
        assert!(
            started.elapsed() < CYCLES_BOUND,
            "only {done:?} connections (SRT, RTMP, WHIP) in {CYCLES_BOUND:?}:\n{}",
            bridge.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let done = counts();
    eprintln!(
        "WHIP sessions ended by a DTLS close: {}, by RTCP silence: {}",
        bridge.log_count("closed the DTLS connection"),
        bridge.log_count("sent no RTCP report")
    );
    let ended = bridge.terminate(Duration::from_secs(15));
    assert_eq!(ended.code, Some(0), "{}", bridge.log());

    let window = CYCLES / 3;
    let (first_rss, first_threads, first_fds) =
        peaks(&samples, WARM_UP_CYCLES..WARM_UP_CYCLES + window);
    let (last_rss, last_threads, last_fds) = peaks(&samples, CYCLES - window..CYCLES + 1);
    eprintln!(
        "{done:?} connections (SRT, RTMP, WHIP) in {:?}; cycles {}-{}: RSS at most {first_rss} \
         KiB, {first_threads} threads, {first_fds} open fds; cycles {}-{CYCLES}: RSS at most \
         {last_rss} KiB, {last_threads} threads, {last_fds} open fds",
        started.elapsed(),
        WARM_UP_CYCLES,
        WARM_UP_CYCLES + window,
        CYCLES - window
    );
    assert!(
        last_rss <= first_rss + RSS_GROWTH_BOUND_KIB,
        "RSS grew from {first_rss} to {last_rss} KiB over the reconnect cycles"
    );
    assert!(
        last_threads <= first_threads + THREAD_GROWTH_BOUND,
        "threads grew from {first_threads} to {last_threads} over the reconnect cycles"
    );
    assert!(
        last_fds <= first_fds + FD_GROWTH_BOUND,
        "open file descriptors grew from {first_fds} to {last_fds} over the reconnect cycles"
    );
}
