//! The split of the MPEG-TS muxer's output (see `output::mpegts`) into SRT
//! messages.

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
}
