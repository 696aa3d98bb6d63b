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
/// mpegtsmux (GStreamer 1.22, `alignment=7`) stamps each output buffer
/// with the running time of the video frame being muxed when its first
/// packet was written, less the running time of the first video frame, and
/// holds a frame's last packets until later data fills the buffer. So a
/// frame is complete once a buffer stamped later than the frame comes out:
/// the buffer sent before it carried the frame's last packet. The encoders
/// run without B-frames, so stamps never go back.
pub struct SendTiming<'a> {
    latency: &'a HandoverLatency,
    pending: PendingFrames,
    /// Running time of the first video frame muxed, which the muxer's
    /// output stamps count from.
    first_ns: Option<u64>,
    /// When the last buffer's messages were handed to libsrt.
    last_sent: Option<Instant>,
}

impl<'a> SendTiming<'a> {
    pub fn new(latency: &'a HandoverLatency) -> Self {
        Self {
            latency,
            pending: PendingFrames::default(),
            first_ns: None,
            last_sent: None,
        }
    }

    /// Notes a video frame pushed into the muxer at `running_time_ns`.
    pub fn frame_muxed(&mut self, running_time_ns: u64, captured: Instant) {
        let first_ns = *self.first_ns.get_or_insert(running_time_ns);
        self.pending
            .push(running_time_ns.saturating_sub(first_ns), captured);
    }

    /// Completes the frames stamped before `pts_ns`, the stamp of a buffer
    /// the muxer just delivered, at the last send.
    pub fn buffer_pulled(&mut self, pts_ns: Option<u64>) {
        let (Some(pts_ns), Some(sent)) = (pts_ns, self.last_sent) else {
            return;
        };
        let latency = self.latency;
        self.pending
            .complete_before(pts_ns, |captured| latency.record_at(captured, sent));
    }

    /// Notes that a buffer's messages went to libsrt just now.
    pub fn buffer_sent(&mut self) {
        self.last_sent = Some(Instant::now());
    }

    /// Completes every frame left at the last send, once the muxer has
    /// flushed its last buffer.
    pub fn muxer_ended(&mut self) {
        let Some(sent) = self.last_sent else {
            return;
        };
        let latency = self.latency;
        self.pending
            .complete_all(|captured| latency.record_at(captured, sent));
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

    #[test]
    fn send_timing_completes_at_previous_send() {
        let latency = HandoverLatency::default();
        let mut timing = SendTiming::new(&latency);
        let captured = Instant::now();
        timing.frame_muxed(1000, captured);
        timing.frame_muxed(1033, captured);

        timing.buffer_pulled(Some(0));
        timing.buffer_sent();
        timing.buffer_pulled(Some(0));
        timing.buffer_sent();
        assert_eq!(latency.total().count(), 0, "frame 0 may go on");

        std::thread::sleep(std::time::Duration::from_millis(5));
        timing.buffer_pulled(Some(33));
        let first = latency.total();
        assert_eq!(first.count(), 1, "frame 0 ended in the buffer before");
        assert!(first.max_us < 5000, "timed at the send, not the pull");

        timing.buffer_sent();
        timing.muxer_ended();
        assert_eq!(latency.total().count(), 2);
        assert!(latency.total().max_us >= 5000);
    }

    #[test]
    fn send_timing_waits_for_a_send() {
        let latency = HandoverLatency::default();
        let mut timing = SendTiming::new(&latency);
        timing.frame_muxed(2000, Instant::now());
        timing.buffer_pulled(Some(40));
        timing.muxer_ended();
        assert_eq!(latency.total().count(), 0);
    }
}
