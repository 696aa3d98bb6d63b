//! The split of the MPEG-TS muxer's output (see `output::mpegts`) into SRT
//! messages, and the timing of each video frame's hand-over to libsrt.

use crate::telemetry::latency::{HandoverLatency, PendingFrames};
use std::time::Instant;

/// Bytes in one MPEG-TS packet.
pub const TS_PACKET_BYTES: usize = 188;

/// Cuts a byte stream of MPEG-TS packets into SRT messages of whole packets,
/// at most `max_message_bytes` each. Bytes past the last whole packet wait
/// for the next buffer.
#[derive(Debug)]
pub struct PacketSplitter {
    max_message_bytes: usize,
    pending: Vec<u8>,
}

impl PacketSplitter {
    /// `max_message_bytes` is rounded down to whole packets.
    pub fn new(max_message_bytes: usize) -> Self {
        let packets = (max_message_bytes / TS_PACKET_BYTES).max(1);
        Self {
            max_message_bytes: packets * TS_PACKET_BYTES,
            pending: Vec::new(),
        }
    }

    /// Adds `data` and calls `send` once per complete message, stopping at
    /// the first error.
    pub fn push<E>(
        &mut self,
        data: &[u8],
        mut send: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.pending.is_empty() {
            let whole = data.len() - data.len() % TS_PACKET_BYTES;
            for message in data[..whole].chunks(self.max_message_bytes) {
                send(message)?;
            }
            self.pending.extend_from_slice(&data[whole..]);
            return Ok(());
        }

        self.pending.extend_from_slice(data);
        let whole = self.pending.len() - self.pending.len() % TS_PACKET_BYTES;
        let pending = std::mem::take(&mut self.pending);
        let result = pending[..whole]
            .chunks(self.max_message_bytes)
            .try_for_each(&mut send);
        self.pending = pending[whole..].to_vec();
        result
    }

    /// Bytes held back because they do not form a whole packet yet.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }
}

/// Times each video frame from the appsink to the `srt_sendmsg2` call of
/// the message that completes its MPEG-TS packets.
///
/// The muxer writes one PES packet per video frame, in the order the frames
/// went in, so the sent packets themselves show where each frame ends. When
/// the next video PES starts (`payload_unit_start_indicator`), the video
/// packet sent before it was the previous frame's last. The muxer's output
/// timestamps cannot tell this, because they stay at the video frame's time
/// across the audio packets that follow it.
pub struct SendTiming<'a> {
    latency: &'a HandoverLatency,
    /// Frames pushed into the muxer whose last packet is not yet known to
    /// be sent, oldest first.
    pending: PendingFrames,
    /// The PID of the first PES with a video stream id.
    video_pid: Option<u16>,
    /// Whether a frame's PES has begun and is not yet complete.
    frame_open: bool,
    /// When the message with the latest video packet went to libsrt.
    last_video_sent: Option<Instant>,
}

impl<'a> SendTiming<'a> {
    pub fn new(latency: &'a HandoverLatency) -> Self {
        Self {
            latency,
            pending: PendingFrames::default(),
            video_pid: None,
            frame_open: false,
            last_video_sent: None,
        }
    }

    /// Notes a video frame, captured at `captured`, pushed into the muxer.
    pub fn frame_muxed(&mut self, captured: Instant) {
        self.pending.push(0, captured);
    }

    /// Reads the packet headers of a message handed to libsrt just now.
    pub fn message_sent(&mut self, message: &[u8]) {
        self.message_sent_at(message, Instant::now());
    }

    /// Reads the packet headers of a message handed to libsrt at `sent`.
    pub fn message_sent_at(&mut self, message: &[u8], sent: Instant) {
        for packet in message.chunks_exact(TS_PACKET_BYTES) {
            let Some(header) = PacketHeader::parse(packet) else {
                continue;
            };
            if self.video_pid.is_none() && header.starts_video_pes {
                self.video_pid = Some(header.pid);
            }
            if Some(header.pid) != self.video_pid {
                continue;
            }
            if header.payload_unit_start {
                self.complete_frame();
                self.frame_open = true;
            }
            self.last_video_sent = Some(sent);
        }
    }

    /// Completes the last frame once the muxer has flushed everything.
    pub fn muxer_ended(&mut self) {
        self.complete_frame();
    }

    /// Records the open frame, which ended at the last video packet sent.
    fn complete_frame(&mut self) {
        if !std::mem::take(&mut self.frame_open) {
            return;
        }
        let (Some(captured), Some(sent)) = (self.pending.pop_oldest(), self.last_video_sent) else {
            return;
        };
        self.latency.record_at(captured, sent);
    }
}

/// The fields of an MPEG-TS packet header (ISO/IEC 13818-1, 2.4.3.2) that
/// the send timing reads.
struct PacketHeader {
    pid: u16,
    payload_unit_start: bool,
    /// Whether the payload begins a PES packet with a video stream id
    /// (0xE0 to 0xEF).
    starts_video_pes: bool,
}

impl PacketHeader {
    /// Parses one 188-byte packet; `None` without the sync byte.
    fn parse(packet: &[u8]) -> Option<Self> {
        if packet.len() != TS_PACKET_BYTES || packet[0] != 0x47 {
            return None;
        }
        let payload_unit_start = packet[1] & 0x40 != 0;
        let pid = u16::from(packet[1] & 0x1f) << 8 | u16::from(packet[2]);
        let adaptation = packet[3] >> 4 & 0b11;
        let payload_offset = match adaptation {
            0b01 => 4,
            0b11 => 5 + usize::from(packet[4]),
            _ => TS_PACKET_BYTES,
        };
        let payload = packet.get(payload_offset..).unwrap_or_default();
        let starts_video_pes = payload_unit_start
            && payload.len() >= 4
            && payload[..3] == [0, 0, 1]
            && (0xe0..=0xef).contains(&payload[3]);
        Some(Self {
            pid,
            payload_unit_start,
            starts_video_pes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(buffers: &[usize], max_message_bytes: usize) -> (Vec<usize>, usize) {
        let mut splitter = PacketSplitter::new(max_message_bytes);
        let mut sizes = Vec::new();
        for &length in buffers {
            let data = vec![0x47u8; length];
            splitter
                .push(&data, |message| {
                    sizes.push(message.len());
                    Ok::<(), ()>(())
                })
                .unwrap();
        }
        (sizes, splitter.pending_bytes())
    }

    #[test]
    fn splitter_cuts_on_packet_boundaries() {
        let cases: [(&[usize], usize, &[usize], usize); 6] = [
            (&[1316], 1316, &[1316], 0),
            (&[188], 1316, &[188], 0),
            (&[1316 * 2 + 376], 1316, &[1316, 1316, 376], 0),
            (&[100, 88], 1316, &[188], 0),
            (&[200], 1316, &[188], 12),
            (&[1316], 1400, &[1316], 0),
        ];
        for (buffers, max, expected, pending) in cases {
            let (sizes, left) = split(buffers, max);
            assert_eq!(sizes, expected, "{buffers:?}");
            assert_eq!(left, pending, "{buffers:?}");
        }
    }

    #[test]
    fn splitter_keeps_byte_order() {
        let mut splitter = PacketSplitter::new(1316);
        let data: Vec<u8> = (0..188 * 9).map(|i| (i % 251) as u8).collect();
        let mut out = Vec::new();
        for piece in data.chunks(500) {
            splitter
                .push(piece, |message| {
                    assert_eq!(message.len() % TS_PACKET_BYTES, 0);
                    out.extend_from_slice(message);
                    Ok::<(), ()>(())
                })
                .unwrap();
        }
        assert_eq!(out, data);
    }

    #[test]
    fn splitter_stops_at_send_error() {
        let mut splitter = PacketSplitter::new(188);
        let mut calls = 0;
        let result = splitter.push(&[0u8; 188 * 3], |_| {
            calls += 1;
            Err("gone")
        });
        assert_eq!(result, Err("gone"));
        assert_eq!(calls, 1);
    }

    /// Builds one packet of `pid`; with `stream_id`, it starts a PES of it.
    fn packet(pid: u16, stream_id: Option<u8>) -> Vec<u8> {
        let mut packet = vec![0xffu8; TS_PACKET_BYTES];
        packet[0] = 0x47;
        packet[1] = (pid >> 8) as u8 & 0x1f;
        packet[2] = pid as u8;
        packet[3] = 0x10;
        if let Some(stream_id) = stream_id {
            packet[1] |= 0x40;
            packet[4..8].copy_from_slice(&[0, 0, 1, stream_id]);
        }
        packet
    }

    const VIDEO: u16 = 65;
    const AUDIO: u16 = 66;

    #[test]
    fn send_timing_ends_frame_at_its_last_packet() {
        let latency = HandoverLatency::default();
        let mut timing = SendTiming::new(&latency);
        let start = Instant::now();
        let at = |millis: u64| start + std::time::Duration::from_millis(millis);
        timing.frame_muxed(start);
        timing.frame_muxed(at(33));

        let first = [
            packet(0, None),
            packet(VIDEO, Some(0xe0)),
            packet(VIDEO, None),
        ]
        .concat();
        timing.message_sent_at(&first, at(2));
        let tail = [packet(VIDEO, None), packet(AUDIO, Some(0xc0))].concat();
        timing.message_sent_at(&tail, at(5));
        timing.message_sent_at(&packet(AUDIO, None), at(30));
        assert_eq!(latency.total().count(), 0, "frame 0 may go on");

        timing.message_sent_at(&packet(VIDEO, Some(0xe0)), at(40));
        let after_first = latency.total();
        assert_eq!(after_first.count(), 1);
        assert_eq!(
            after_first.max_us, 5000,
            "the audio after it does not count"
        );

        timing.message_sent_at(&packet(VIDEO, None), at(45));
        timing.muxer_ended();
        let after_end = latency.total();
        assert_eq!(after_end.count(), 2);
        assert_eq!(after_end.max_us, 12_000, "frame 1 ends at 45 ms");
    }

    #[test]
    fn send_timing_same_message_end_and_start() {
        let latency = HandoverLatency::default();
        let mut timing = SendTiming::new(&latency);
        let start = Instant::now();
        timing.frame_muxed(start);
        timing.frame_muxed(start);
        let message = [packet(VIDEO, Some(0xe0)), packet(VIDEO, Some(0xe0))].concat();
        timing.message_sent_at(&message, start + std::time::Duration::from_millis(7));
        assert_eq!(latency.total().count(), 1);
        assert_eq!(latency.total().max_us, 7000);
    }

    #[test]
    fn send_timing_ignores_other_pids() {
        let latency = HandoverLatency::default();
        let mut timing = SendTiming::new(&latency);
        timing.frame_muxed(Instant::now());
        timing.message_sent(&packet(AUDIO, Some(0xc0)));
        timing.message_sent(&packet(AUDIO, Some(0xc0)));
        timing.message_sent(&[0u8; TS_PACKET_BYTES]);
        timing.muxer_ended();
        assert_eq!(latency.total().count(), 0);
    }

    #[test]
    fn packet_header_reads_adaptation_field() {
        let mut with_field = packet(VIDEO, None);
        with_field[1] |= 0x40;
        with_field[3] = 0x30;
        with_field[4] = 7;
        with_field[12..16].copy_from_slice(&[0, 0, 1, 0xe0]);
        let header = PacketHeader::parse(&with_field).unwrap();
        assert_eq!(header.pid, VIDEO);
        assert!(header.payload_unit_start);
        assert!(header.starts_video_pes);

        let audio = PacketHeader::parse(&packet(AUDIO, Some(0xc0))).unwrap();
        assert!(!audio.starts_video_pes);
        assert!(PacketHeader::parse(&[0u8; TS_PACKET_BYTES]).is_none());
    }
}
