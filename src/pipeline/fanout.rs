//! Hands encoded frames from the media pipeline to every output through one
//! bounded channel each, without ever blocking a GStreamer streaming thread.

use crate::output::{AudioCodec, Frame, MediaKind};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Frames an output may fall behind before frames are dropped: about four
/// seconds of 30 fps video with its audio.
pub const CHANNEL_FRAMES: usize = 300;

#[derive(Default)]
struct TapState {
    /// Set while a session wants frames; between sessions nothing is queued.
    accepting: AtomicBool,
    /// Set after a drop or at session start: frames are dropped until the
    /// next video keyframe, so the output never sees a broken GOP.
    need_keyframe: AtomicBool,
    dropped: AtomicU64,
}

/// The media pipeline's end of one output's channel.
struct Tap {
    id: TapId,
    sender: Sender<Frame>,
    state: Arc<TapState>,
    /// The audio codec this output takes; audio in any other is not offered.
    audio: AudioCodec,
}

impl Tap {
    fn offer(&self, frame: &Frame) {
        if frame.audio_codec().is_some_and(|codec| codec != self.audio) {
            return;
        }
        let state = &self.state;
        if !state.accepting.load(Ordering::Acquire) {
            return;
        }
        if state.need_keyframe.load(Ordering::Acquire) {
            if frame.kind != MediaKind::Video || !frame.is_keyframe() {
                return;
            }
            state.need_keyframe.store(false, Ordering::Release);
        }
        match self.sender.try_send(frame.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                state.dropped.fetch_add(1, Ordering::Relaxed);
                state.need_keyframe.store(true, Ordering::Release);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// Names one output's tap, to remove it while the others go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapId(u64);

/// The output's end of its channel.
pub struct FrameReceiver {
    id: TapId,
    receiver: Receiver<Frame>,
    state: Arc<TapState>,
    /// When the current session's connection came up and began to stream.
    streaming_since: Mutex<Option<Instant>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    Frame,
    Timeout,
    Closed,
}

/// A frame or a message of the other channel, from
/// `FrameReceiver::recv_either`.
#[derive(Debug)]
pub enum Either<T> {
    Frame(Frame),
    Other(T),
}

impl FrameReceiver {
    /// Starts queueing frames for a new session, beginning at the next video
    /// keyframe. Frames left from an earlier session are discarded.
    pub fn start(&self) {
        while self.receiver.try_recv().is_ok() {}
        self.state.need_keyframe.store(true, Ordering::Release);
        self.state.accepting.store(true, Ordering::Release);
    }

    /// Stops queueing frames and discards what is queued.
    pub fn pause(&self) {
        self.state.accepting.store(false, Ordering::Release);
        while self.receiver.try_recv().is_ok() {}
    }

    /// Waits up to `timeout` for the next frame; `Err` tells why none came.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Frame, Received> {
        match self.receiver.recv_timeout(timeout) {
            Ok(frame) => Ok(frame),
            Err(RecvTimeoutError::Timeout) => Err(Received::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(Received::Closed),
        }
    }

    /// Waits up to `timeout` for the next frame or the next message on
    /// `other`, whichever comes first. Once `other` is closed, waits for a
    /// frame alone.
    pub fn recv_either<T>(
        &self,
        other: &Receiver<T>,
        timeout: Duration,
    ) -> Result<Either<T>, Received> {
        crossbeam_channel::select! {
            recv(self.receiver) -> frame => match frame {
                Ok(frame) => Ok(Either::Frame(frame)),
                Err(_) => Err(Received::Closed),
            },
            recv(other) -> message => match message {
                Ok(message) => Ok(Either::Other(message)),
                Err(_) => self.recv_timeout(timeout).map(Either::Frame),
            },
            default(timeout) => Err(Received::Timeout),
        }
    }

    /// Frames dropped because this output fell behind.
    pub fn dropped(&self) -> u64 {
        self.state.dropped.load(Ordering::Relaxed)
    }

    /// Records that the session's connection is up and streaming. The
    /// supervisor measures a session's health from here, so a dial that
    /// hangs until its timeout never counts as a healthy session.
    pub fn mark_streaming(&self) {
        *self.streaming_since() = Some(Instant::now());
    }

    /// Returns when the session marked itself streaming, if it did, and
    /// clears the mark for the next session.
    pub fn take_streaming_since(&self) -> Option<Instant> {
        self.streaming_since().take()
    }

    fn streaming_since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.streaming_since
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The tap that feeds this receiver, for `Fanout::remove_output`.
    pub fn tap_id(&self) -> TapId {
        self.id
    }

    /// Returns a reader of `dropped` that other threads can keep.
    pub fn drop_counter(&self) -> DropCounter {
        DropCounter(self.state.clone())
    }
}

/// Reads one output's count of dropped frames from any thread.
#[derive(Clone)]
pub struct DropCounter(Arc<TapState>);

impl DropCounter {
    pub fn get(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

/// Counts the encoded video frames handed to the fan-out, slate frames
/// included, from any thread. The watchdog reads it to tell a running
/// pipeline from a hung one.
#[derive(Clone, Default)]
pub struct FrameCounter(Arc<AtomicU64>);

impl FrameCounter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn increment(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every output's tap, shared by the media pipeline's appsink callbacks.
#[derive(Clone, Default)]
pub struct Fanout {
    taps: Arc<Mutex<Vec<Tap>>>,
    video_frames: FrameCounter,
    next_id: Arc<AtomicU64>,
}

impl Fanout {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an output that takes AAC audio and returns its end of the
    /// channel.
    pub fn add_output(&self) -> FrameReceiver {
        self.add_output_for(AudioCodec::Aac)
    }

    /// Adds an output that takes `audio` and returns its end of the channel.
    pub fn add_output_for(&self, audio: AudioCodec) -> FrameReceiver {
        let (sender, receiver) = crossbeam_channel::bounded(CHANNEL_FRAMES);
        let state = Arc::new(TapState::default());
        let id = TapId(self.next_id.fetch_add(1, Ordering::Relaxed));
        self.lock().push(Tap {
            id,
            sender,
            state: state.clone(),
            audio,
        });
        FrameReceiver {
            id,
            receiver,
            state,
            streaming_since: Mutex::new(None),
        }
    }

    /// Offers a frame to every output. Never blocks on an output.
    pub fn publish(&self, frame: Frame) {
        if frame.kind == MediaKind::Video {
            self.video_frames.increment();
        }
        for tap in self.lock().iter() {
            tap.offer(&frame);
        }
    }

    /// Returns the counter of video frames published so far.
    pub fn frame_counter(&self) -> FrameCounter {
        self.video_frames.clone()
    }

    /// Closes one output's channel: it reads what is queued, then sees the
    /// end, as at a clean stop, while the other outputs go on.
    pub fn remove_output(&self, id: TapId) {
        self.lock().retain(|tap| tap.id != id);
    }

    /// Closes every channel: outputs read what is queued, then see the end.
    pub fn close(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Tap>> {
        self.taps
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer as gst;

    fn frame(kind: MediaKind, keyframe: bool) -> Frame {
        gst::init().unwrap();
        let mut buffer = gst::Buffer::with_size(4).unwrap();
        if !keyframe {
            buffer
                .get_mut()
                .unwrap()
                .set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        let sample = gst::Sample::builder().buffer(&buffer).build();
        Frame::new(kind, sample)
    }

    #[test]
    fn recv_either_takes_both_channels() {
        let fanout = Fanout::new();
        let receiver = fanout.add_output();
        receiver.start();
        let (sender, other) = crossbeam_channel::unbounded();
        let wait = Duration::from_millis(20);

        sender.send(7u32).unwrap();
        match receiver.recv_either(&other, wait) {
            Ok(Either::Other(message)) => assert_eq!(message, 7),
            result => panic!("expected the other channel's message, got {result:?}"),
        }
        assert_eq!(
            receiver.recv_either(&other, wait).unwrap_err(),
            Received::Timeout
        );

        fanout.publish(frame(MediaKind::Video, true));
        let received = receiver.recv_either(&other, wait);
        assert!(matches!(received, Ok(Either::Frame(_))), "{received:?}");

        drop(sender);
        fanout.publish(frame(MediaKind::Video, false));
        let received = receiver.recv_either(&other, wait);
        assert!(
            matches!(received, Ok(Either::Frame(_))),
            "a closed other channel must not hide frames: {received:?}"
        );
        fanout.close();
        assert_eq!(
            receiver.recv_either(&other, wait).unwrap_err(),
            Received::Closed
        );
    }

    #[test]
    fn session_starts_at_keyframe() {
        let fanout = Fanout::new();
        let receiver = fanout.add_output();
        fanout.publish(frame(MediaKind::Video, true));
        assert_eq!(
            receiver.recv_timeout(Duration::ZERO).unwrap_err(),
            Received::Timeout
        );

        receiver.start();
        fanout.publish(frame(MediaKind::Audio, true));
        fanout.publish(frame(MediaKind::Video, false));
        fanout.publish(frame(MediaKind::Video, true));
        fanout.publish(frame(MediaKind::Audio, true));
        let first = receiver.recv_timeout(Duration::ZERO).unwrap();
        assert_eq!(first.kind, MediaKind::Video);
        assert!(first.is_keyframe());
        assert_eq!(
            receiver.recv_timeout(Duration::ZERO).unwrap().kind,
            MediaKind::Audio
        );
    }

    #[test]
    fn full_channel_drops_until_keyframe() {
        let fanout = Fanout::new();
        let receiver = fanout.add_output();
        receiver.start();
        fanout.publish(frame(MediaKind::Video, true));
        for _ in 0..CHANNEL_FRAMES + 5 {
            fanout.publish(frame(MediaKind::Video, false));
        }
        assert_eq!(receiver.dropped(), 1);
        assert_eq!(receiver.drop_counter().get(), 1);
        while receiver.recv_timeout(Duration::ZERO).is_ok() {}
        fanout.publish(frame(MediaKind::Video, false));
        assert_eq!(
            receiver.recv_timeout(Duration::ZERO).unwrap_err(),
            Received::Timeout
        );
        fanout.publish(frame(MediaKind::Video, true));
        assert!(receiver.recv_timeout(Duration::ZERO).unwrap().is_keyframe());
    }

    #[test]
    fn audio_goes_only_to_outputs_of_its_codec() {
        let fanout = Fanout::new();
        let aac = fanout.add_output();
        let opus = fanout.add_output_for(AudioCodec::Opus);
        aac.start();
        opus.start();
        fanout.publish(frame(MediaKind::Video, true));
        let mut opus_frame = frame(MediaKind::Audio, true);
        opus_frame.sample = gst::Sample::builder()
            .buffer(&opus_frame.sample.buffer_owned().unwrap())
            .caps(&gst::Caps::builder("audio/x-opus").build())
            .build();
        fanout.publish(opus_frame);
        fanout.publish(frame(MediaKind::Audio, true));

        let codecs = |receiver: &FrameReceiver| {
            std::iter::from_fn(|| receiver.recv_timeout(Duration::ZERO).ok())
                .map(|frame| frame.audio_codec())
                .collect::<Vec<_>>()
        };
        assert_eq!(codecs(&aac), [None, Some(AudioCodec::Aac)]);
        assert_eq!(codecs(&opus), [None, Some(AudioCodec::Opus)]);
    }

    #[test]
    fn frame_counter_counts_video_frames() {
        let fanout = Fanout::new();
        let counter = fanout.frame_counter();
        fanout.publish(frame(MediaKind::Video, true));
        fanout.publish(frame(MediaKind::Audio, true));
        fanout.publish(frame(MediaKind::Video, false));
        assert_eq!(counter.get(), 2, "video frames, with no output added");
    }

    #[test]
    fn removed_output_ends_others_go_on() {
        let fanout = Fanout::new();
        let kept = fanout.add_output();
        let removed = fanout.add_output();
        kept.start();
        removed.start();
        fanout.publish(frame(MediaKind::Video, true));
        fanout.remove_output(removed.tap_id());
        fanout.publish(frame(MediaKind::Video, false));

        let short = Duration::from_millis(10);
        assert!(
            removed.recv_timeout(short).is_ok(),
            "the queued frame is lost"
        );
        assert_eq!(removed.recv_timeout(short).unwrap_err(), Received::Closed);
        assert!(kept.recv_timeout(short).is_ok());
        assert!(
            kept.recv_timeout(short).is_ok(),
            "the kept output missed a frame"
        );
    }

    #[test]
    fn close_ends_after_queued_frames() {
        let fanout = Fanout::new();
        let receiver = fanout.add_output();
        receiver.start();
        fanout.publish(frame(MediaKind::Video, true));
        fanout.close();
        assert!(receiver.recv_timeout(Duration::ZERO).is_ok());
        assert_eq!(
            receiver.recv_timeout(Duration::ZERO).unwrap_err(),
            Received::Closed
        );
    }
}
