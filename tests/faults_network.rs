//! SRT through a lossy, slow path: a seeded UDP relay between the bridge
//! and the libsrt receiver drops 5 % of the datagrams in each direction
//! and delays the rest by 50 ms. With a latency of about four round trips,
//! libsrt's retransmissions repair the losses in time.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;
use support::fault_peers::{
    assert_no_gap, srt_port, start_bridge, start_srt_receiver, SOURCE_ARGS, SOURCE_ID,
};
use support::media::decode_errors;
use support::standin::Standin;
use support::timeline::{sorted_times, video_packets};
use support::udp_relay::{Impairment, UdpRelay};

const FPS: f64 = 30.0;
const DURATION_S: f64 = 12.0;

/// Four round trips of the relay's 2 x 50 ms, and a little more.
const LATENCY_MS: &str = "450";

/// The share of the nominal frames that must arrive.
const MIN_FRAME_SHARE: f64 = 0.9;

#[test]
fn srt_repairs_loss_and_delay() {
    let _guard = support::setup();
    let standin = Standin::start(&[]);
    let directory = tempfile::tempdir().unwrap();
    let received = directory.path().join("srt.ts");
    let port = srt_port();
    let srt = start_srt_receiver(&standin, port, &received);
    let relay = UdpRelay::start(
        ([127, 0, 0, 1], port).into(),
        Impairment {
            loss: 0.05,
            delay: Duration::from_millis(50),
            seed: 20_261_204,
        },
    );

    let mut args: Vec<String> = SOURCE_ARGS.iter().map(|arg| arg.to_string()).collect();
    args.extend([
        "--source".to_string(),
        SOURCE_ID.to_string(),
        "--output".to_string(),
        format!("srt://127.0.0.1:{}", relay.port),
        "--latency".to_string(),
        LATENCY_MS.to_string(),
        "--duration".to_string(),
        DURATION_S.to_string(),
    ]);
    let mut bridge = start_bridge(&args, &standin);
    let ended = bridge.wait(Duration::from_secs_f64(DURATION_S + 20.0));
    assert_eq!(ended.code, Some(0), "{}", bridge.log());
    srt.stop();

    let dropped = [&relay.to_server, &relay.to_client]
        .map(|counters| counters.dropped.load(Ordering::Relaxed));
    let forwarded = [&relay.to_server, &relay.to_client]
        .map(|counters| counters.forwarded.load(Ordering::Relaxed));
    eprintln!("relay: dropped {dropped:?} and forwarded {forwarded:?} (to server, to client)");
    assert!(
        dropped[0] > 0,
        "the relay dropped nothing toward the receiver"
    );
    assert!(
        dropped[1] > 0,
        "the relay dropped nothing toward the bridge"
    );

    let packets = video_packets(&received);
    let nominal = FPS * DURATION_S;
    let share = packets.len() as f64 / nominal;
    eprintln!(
        "{} of {nominal} nominal video frames arrived ({:.1} %)",
        packets.len(),
        share * 100.0
    );
    assert!(
        share >= MIN_FRAME_SHARE,
        "only {} of {nominal} video frames arrived",
        packets.len()
    );
    assert!(
        packets[0].keyframe,
        "the first video packet is not a keyframe"
    );
    assert_no_gap(
        "SRT through the lossy relay",
        &sorted_times(&packets),
        DURATION_S - 2.0,
    );
    let errors = decode_errors(&received);
    assert!(errors.trim().is_empty(), "decode errors: {errors}");
}
