//! One segment being recorded: its MPEG-TS muxer and the file the muxer's
//! output goes to.
//!
//! Muxed data is written straight to the file, without a buffer in the
//! process, so that a killed bridge leaves everything it muxed in the page
//! cache. `sync_data` at every upkeep and at the close puts it on the disk.

use super::name::SegmentName;
use super::RecordError;
use crate::output::mpegts::TsMuxer;
use crate::output::{Frame, MediaKind};
use gstreamer as gst;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the muxer may take to flush after a segment's last frame.
const FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// How long the muxer may produce nothing while frames keep coming, as when
/// audio is expected but has stopped, before the session fails.
const MUX_STALL_LIMIT: Duration = Duration::from_secs(5);

/// A segment's file, created new and written in order.
pub struct SegmentFile {
    path: PathBuf,
    file: File,
    bytes: u64,
}

impl SegmentFile {
    /// Creates the file; an existing file of that name is never overwritten
    /// (`ErrorKind::AlreadyExists`). The directory is synced too, so that
    /// the new file's name survives a power cut.
    pub fn create(path: PathBuf) -> std::io::Result<Self> {
        let file = File::options().write(true).create_new(true).open(&path)?;
        if let Some(directory) = path.parent() {
            // Some file systems cannot sync a directory. The segment is
            // recorded all the same, only its name is less safe there.
            let synced = File::open(directory).and_then(|directory| directory.sync_all());
            if let Err(error) = synced {
                tracing::debug!(%error, "cannot sync the recording directory");
            }
        }
        Ok(Self {
            path,
            file,
            bytes: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn write(&mut self, data: &[u8]) -> Result<(), RecordError> {
        self.file
            .write_all(data)
            .map_err(|source| RecordError::Write {
                path: self.path.clone(),
                source,
            })?;
        self.bytes += data.len() as u64;
        Ok(())
    }

    /// Moves what was written so far from the page cache to the disk.
    pub fn sync(&self) -> Result<(), RecordError> {
        self.file.sync_data().map_err(|source| RecordError::Sync {
            path: self.path.clone(),
            source,
        })
    }

    /// Closes the file after a failure: what reached it stays, synced as far
    /// as the disk still allows, and a file that received nothing is removed.
    pub fn abandon(self) {
        let _ = self.file.sync_data();
        let empty = self
            .file
            .metadata()
            .is_ok_and(|metadata| metadata.len() == 0);
        drop(self.file);
        if empty {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A segment in progress: the muxer, its file, and the timestamps that tell
/// when the segment is due to end.
pub struct Segment {
    muxer: TsMuxer,
    file: SegmentFile,
    name: SegmentName,
    /// PTS of the keyframe the segment starts with.
    first_pts: Option<gst::ClockTime>,
    last_pts: Option<gst::ClockTime>,
    opened_at: Instant,
    /// Frames the fan-out had dropped for this output when the segment began.
    pub dropped_at_open: u64,
    /// When the first frame since the muxer's last output went in.
    pending_since: Option<Instant>,
}

impl Segment {
    pub fn new(muxer: TsMuxer, file: SegmentFile, name: SegmentName, dropped_at_open: u64) -> Self {
        Self {
            muxer,
            file,
            name,
            first_pts: None,
            last_pts: None,
            opened_at: Instant::now(),
            dropped_at_open,
            pending_since: None,
        }
    }

    pub fn name(&self) -> SegmentName {
        self.name
    }

    pub fn file(&self) -> &SegmentFile {
        &self.file
    }

    /// Returns whether a keyframe with `pts` is at least `length` of media
    /// after the segment's first frame. Without timestamps, wall-clock time
    /// since the segment opened counts instead.
    pub fn is_due(&self, pts: Option<gst::ClockTime>, length: Duration) -> bool {
        // Frame timestamps are rounded to nanoseconds, so a keyframe exactly
        // `length` in may land a nanosecond short of it.
        const ROUNDING: Duration = Duration::from_micros(1);
        let elapsed = match (self.first_pts, pts) {
            (Some(first), Some(pts)) => Duration::from_nanos(pts.saturating_sub(first).nseconds()),
            _ => self.opened_at.elapsed(),
        };
        elapsed + ROUNDING >= length
    }

    /// Returns the media time from the first video frame to the last one
    /// pushed.
    pub fn media_duration(&self) -> Duration {
        match (self.first_pts, self.last_pts) {
            (Some(first), Some(last)) => {
                Duration::from_nanos(last.saturating_sub(first).nseconds())
            }
            _ => Duration::ZERO,
        }
    }

    pub fn push(&mut self, frame: Frame) -> Result<(), RecordError> {
        if frame.kind == MediaKind::Video {
            let pts = frame.pts();
            if self.first_pts.is_none() {
                self.first_pts = pts;
            }
            self.last_pts = pts.or(self.last_pts);
        }
        self.muxer.push(frame)?;
        self.pending_since.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// Writes every muxed buffer that is ready, and fails when the muxer
    /// has produced nothing for too long while frames went in.
    pub fn forward(&mut self, has_audio: bool) -> Result<(), RecordError> {
        let mut data = Vec::new();
        while let Some(buffer) = self.muxer.pull(gst::ClockTime::ZERO) {
            append(&mut data, &buffer)?;
        }
        if !data.is_empty() {
            self.file.write(&data)?;
            self.pending_since = None;
        }
        self.muxer.check()?;
        if self
            .pending_since
            .is_some_and(|since| since.elapsed() > MUX_STALL_LIMIT)
        {
            return Err(RecordError::MuxStall {
                limit_s: MUX_STALL_LIMIT.as_secs(),
                has_audio,
            });
        }
        Ok(())
    }

    pub fn sync(&self) -> Result<(), RecordError> {
        self.file.sync()
    }

    /// Flushes the muxer into the file, then syncs and closes it. Returns
    /// the file's path and size.
    pub fn finish(mut self) -> Result<(PathBuf, u64), RecordError> {
        self.muxer.finish();
        let deadline = Instant::now() + FLUSH_LIMIT;
        while !self.muxer.is_ended() && Instant::now() < deadline {
            if let Some(buffer) = self.muxer.pull(gst::ClockTime::from_mseconds(50)) {
                let mut data = Vec::new();
                append(&mut data, &buffer)?;
                self.file.write(&data)?;
            }
            self.muxer.check()?;
        }
        if !self.muxer.is_ended() {
            tracing::warn!(
                file = %self.file.path().display(),
                limit_ms = FLUSH_LIMIT.as_millis() as u64,
                "the MPEG-TS muxer did not finish flushing in time; the segment lacks its last \
                 packets"
            );
        }
        self.file.sync()?;
        Ok((self.file.path, self.file.bytes))
    }

    /// Drops the muxer and closes the file after a failure.
    pub fn abandon(self) {
        drop(self.muxer);
        self.file.abandon();
    }
}

fn append(data: &mut Vec<u8>, buffer: &gst::Buffer) -> Result<(), RecordError> {
    let map = buffer
        .map_readable()
        .map_err(|_| RecordError::UnreadableBuffer)?;
    data.extend_from_slice(map.as_slice());
    Ok(())
}
