//! Local recording (`--record DIR`): the shared encode, H.264 and AAC as
//! they leave the encoders, written to MPEG-TS segments that each start at
//! a keyframe.
//!
//! ```text
//! fan-out channel ─► mpegtsmux (one per segment) ─► DIR/bridge-<UTC>-<sequence>.ts
//! ```
//!
//! The recording is one more output behind the `Output` trait, so a slow or
//! failing disk costs only the recording. Its channel drops frames up to the
//! next keyframe when the disk falls behind, and a write error ends the
//! session, which the supervisor starts again after its backoff. It never
//! requests a keyframe from the encoder, so the live outputs get the same
//! stream with or without it.

mod name;
pub mod retention;
mod segment;

use crate::exit::ExitStatus;
use crate::output::mpegts::{MuxError, TsMuxer};
use crate::output::{Frame, MediaKind, Output, OutputError, Session};
use crate::pipeline::fanout::Received;
use gstreamer as gst;
use name::SegmentName;
use retention::Limits;
use segment::{Segment, SegmentFile};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tracing::{debug, error, info, warn};

/// The default `--record-segment`, in seconds.
pub const DEFAULT_SEGMENT_SECONDS: f64 = 60.0;

/// How long the session loop waits for a frame before it looks at the
/// muxer and the clock again.
const FRAME_POLL: Duration = Duration::from_millis(50);

/// How often the segment being written is synced to the disk and the limits
/// are applied.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(2);

/// The shortest time between two warnings about dropped frames.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Names of existing files tried before opening a segment fails.
const MAX_NAME_ATTEMPTS: u32 = 1000;

/// Space below which the start-up check calls the recording directory full:
/// 1 MiB, about 1.4 s of the default 1080p encode at 6000 kb/s.
const MIN_AVAILABLE_BYTES: u64 = 1 << 20;

/// The recording's directory, segment length and limits.
#[derive(Clone, Debug)]
pub struct RecordSettings {
    pub directory: PathBuf,
    /// Media time after which the next keyframe starts a new segment.
    pub segment_length: Duration,
    pub limits: Limits,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(
        "the recording directory {} does not exist: create it (mkdir -p {}) or give another \
         --record directory",
        path.display(),
        path.display()
    )]
    MissingDirectory { path: PathBuf },

    #[error(
        "the recording directory {} is not a directory: give --record a directory",
        path.display()
    )]
    NotADirectory { path: PathBuf },

    #[error(
        "cannot write to the recording directory {}: {source}; give --record an existing \
         directory on a writable file system that the bridge's user may write to",
        path.display()
    )]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot create segment {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("writing segment {} failed: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("syncing segment {} to the disk failed: {source}", path.display())]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(transparent)]
    Mux(#[from] MuxError),

    #[error("cannot read a buffer from the MPEG-TS muxer")]
    UnreadableBuffer,

    #[error(
        "the MPEG-TS muxer produced nothing for {limit_s} s while frames arrived (audio \
         expected: {has_audio}): check that every expected stream still delivers frames"
    )]
    MuxStall { limit_s: u64, has_audio: bool },
}

impl RecordError {
    /// Returns the failure without the file it happened to, so that the
    /// same cause on the next segment counts as a repeat.
    fn cause(&self) -> String {
        match self {
            Self::Create { source, .. } => format!("create: {source}"),
            Self::Write { source, .. } => format!("write: {source}"),
            Self::Sync { source, .. } => format!("sync: {source}"),
            other => other.to_string(),
        }
    }
}

/// Records the shared encode into a directory.
pub struct RecordOutput {
    settings: RecordSettings,
    /// The sequence number of the next segment, read from the directory's
    /// segments when the first one opens.
    next_sequence: Option<u64>,
    /// Set when the first session starts. Before that a directory problem
    /// ends the bridge with exit 2, after it the session is retried.
    started: bool,
    /// The cause of the failure that ended the last session, until a
    /// segment records again, so that a repeated cause is logged once.
    failing: Option<String>,
    drops: DropLog,
    /// Set once the directory was reported full, so that the check before
    /// each session warns only once.
    full_reported: AtomicBool,
}

impl RecordOutput {
    pub fn new(settings: RecordSettings) -> Self {
        Self {
            settings,
            next_sequence: None,
            started: false,
            full_reported: AtomicBool::new(false),
            failing: None,
            drops: DropLog::default(),
        }
    }

    /// Records until the frame channel closes (`Ok`) or a write fails. The
    /// segment in progress is left in `current` for the caller to abandon.
    fn record(
        &mut self,
        session: &Session<'_>,
        current: &mut Option<Segment>,
    ) -> Result<(), RecordError> {
        let mut next_upkeep = Instant::now() + UPKEEP_INTERVAL;
        loop {
            match session.frames.recv_timeout(FRAME_POLL) {
                Ok(frame) => {
                    session.status.add_bytes(frame.size());
                    self.take_frame(frame, session, current)?;
                }
                Err(Received::Timeout | Received::Frame) => {}
                Err(Received::Closed) => break,
            }
            if let Some(segment) = current.as_mut() {
                segment.forward(session.has_audio)?;
            }
            if Instant::now() >= next_upkeep {
                self.upkeep(current.as_ref())?;
                next_upkeep = Instant::now() + UPKEEP_INTERVAL;
            }
        }

        self.drops.note(session.frames.dropped());
        if let Some(segment) = current.take() {
            self.close_segment(segment)?;
        }
        Ok(())
    }

    /// Hands a frame to the segment in progress. A keyframe first starts a
    /// new segment when the current one is due to end, or when frames were
    /// dropped since it began, so that no segment has a gap inside.
    fn take_frame(
        &mut self,
        frame: Frame,
        session: &Session<'_>,
        current: &mut Option<Segment>,
    ) -> Result<(), RecordError> {
        if frame.kind == MediaKind::Video && frame.is_keyframe() {
            let dropped = session.frames.dropped();
            self.drops.note(dropped);
            let starts_segment = match current.as_ref() {
                None => true,
                Some(segment) => {
                    segment.dropped_at_open != dropped
                        || segment.is_due(frame.pts(), self.settings.segment_length)
                }
            };
            if starts_segment {
                if let Some(segment) = current.take() {
                    self.close_segment(segment)?;
                }
                *current = Some(self.open_segment(session.has_audio, dropped)?);
            }
        }
        match current.as_mut() {
            Some(segment) => segment.push(frame),
            // The fan-out starts every session at a keyframe, so this is
            // only reached if that changes; such frames cannot be decoded.
            None => Ok(()),
        }
    }

    fn open_segment(&mut self, has_audio: bool, dropped: u64) -> Result<Segment, RecordError> {
        let directory = &self.settings.directory;
        // Read before the limits delete anything, so that the numbering
        // continues after segments that go now.
        let mut sequence = match self.next_sequence {
            Some(sequence) => sequence,
            None => next_sequence_in(directory),
        };
        self.apply_limits(None);
        let muxer = TsMuxer::new("record-mux", has_audio)?;
        let directory = &self.settings.directory;

        let mut attempts = 0;
        let (name, file) = loop {
            let name = SegmentName::new(SystemTime::now(), sequence);
            let path = directory.join(name.to_string());
            match SegmentFile::create(path.clone()) {
                Ok(file) => break (name, file),
                Err(source) if source.kind() == ErrorKind::AlreadyExists => {
                    attempts += 1;
                    sequence += 1;
                    if attempts >= MAX_NAME_ATTEMPTS {
                        return Err(RecordError::Create { path, source });
                    }
                }
                Err(source) => return Err(RecordError::Create { path, source }),
            }
        };
        self.next_sequence = Some(sequence + 1);
        debug!(file = %file.path().display(), "segment opened");
        Ok(Segment::new(muxer, file, name, dropped))
    }

    fn close_segment(&mut self, segment: Segment) -> Result<(), RecordError> {
        let duration_ms = segment.media_duration().as_millis() as u64;
        let (path, bytes) = segment.finish()?;
        info!(file = %path.display(), bytes, duration_ms, "segment closed");
        Ok(())
    }

    /// Syncs the segment in progress and applies the limits.
    fn upkeep(&mut self, current: Option<&Segment>) -> Result<(), RecordError> {
        if let Some(segment) = current {
            segment.sync()?;
            if segment.file().bytes() > 0 && self.failing.take().is_some() {
                info!(file = %segment.file().path().display(), "recording again");
            }
        }
        self.apply_limits(current.map(Segment::name));
        Ok(())
    }

    /// Deletes the oldest of this bridge's segments that break a limit.
    /// Failures are logged: the limits are applied again at the next upkeep.
    fn apply_limits(&self, current: Option<SegmentName>) {
        let limits = self.settings.limits;
        if limits.is_unlimited() {
            return;
        }
        let directory = &self.settings.directory;
        let segments = match retention::list(directory) {
            Ok(segments) => segments,
            Err(error) => {
                warn!(
                    directory = %directory.display(),
                    %error,
                    "cannot list the recording directory to apply its limits"
                );
                return;
            }
        };
        for (index, reason) in retention::select(&segments, current, limits, SystemTime::now()) {
            let segment = &segments[index];
            match std::fs::remove_file(&segment.path) {
                Ok(()) => info!(
                    file = %segment.path.display(),
                    bytes = segment.bytes,
                    limit = reason.as_str(),
                    "deleted an old segment"
                ),
                Err(error) if error.kind() == ErrorKind::NotFound => {}
                Err(error) => warn!(
                    file = %segment.path.display(),
                    %error,
                    "cannot delete an old segment"
                ),
            }
        }
    }

    /// Logs a failed session: at error the first time a cause occurs, at
    /// debug while it repeats.
    fn report_failure(&mut self, failure: &RecordError) {
        let cause = failure.cause();
        if self.failing.as_ref() == Some(&cause) {
            debug!(error = %failure, "recording failed again");
            return;
        }
        error!(
            error = %failure,
            "recording failed; the segment is closed and a new one starts after the backoff, \
             while the live outputs go on"
        );
        self.failing = Some(cause);
    }
}

impl Output for RecordOutput {
    fn label(&self) -> String {
        format!("record {}", self.settings.directory.display())
    }

    fn preflight(&self) -> Result<(), OutputError> {
        let directory = &self.settings.directory;
        let checked = check_muxer().and_then(|()| check_directory(directory));
        match checked {
            Ok(None) => Ok(()),
            Ok(Some(cause)) => {
                if !self.full_reported.swap(true, Ordering::Relaxed) {
                    warn!(
                        directory = %directory.display(),
                        cause,
                        "the recording directory is full; recording starts once space is freed"
                    );
                }
                Ok(())
            }
            Err(error) if self.started => Err(OutputError::Transient(error.to_string())),
            Err(error) => Err(OutputError::Fatal {
                status: ExitStatus::Usage,
                message: error.to_string(),
            }),
        }
    }

    fn run_session(&mut self, session: Session<'_>) -> Result<(), OutputError> {
        self.started = true;
        session.frames.start();
        session.status.live();
        let mut current = None;
        let result = self.record(&session, &mut current);
        session.frames.pause();

        let Err(failure) = result else {
            return Ok(());
        };
        if let Some(segment) = current.take() {
            segment.abandon();
        }
        self.report_failure(&failure);
        Err(OutputError::Transient(failure.to_string()))
    }
}

/// Returns the sequence number after the highest in `directory`'s
/// segments, or 1, so that a restarted bridge continues the numbering.
fn next_sequence_in(directory: &Path) -> u64 {
    retention::list(directory)
        .ok()
        .and_then(|segments| segments.iter().map(|segment| segment.name.sequence).max())
        .map_or(1, |highest| highest + 1)
}

fn check_muxer() -> Result<(), RecordError> {
    let found = gst::init().is_ok() && gst::ElementFactory::find("mpegtsmux").is_some();
    if found {
        Ok(())
    } else {
        Err(RecordError::Mux(MuxError::MissingElement {
            factory: "mpegtsmux",
        }))
    }
}

/// Checks that `directory` exists and that a file can be created in it.
/// Returns why the disk is full, if it is. A full disk passes: space may be
/// freed while the bridge runs, and the live outputs must not wait for it.
fn check_directory(directory: &Path) -> Result<Option<String>, RecordError> {
    let path = directory.to_path_buf();
    let metadata = match std::fs::metadata(directory) {
        Ok(metadata) => metadata,
        Err(source) if source.kind() == ErrorKind::NotFound => {
            return Err(RecordError::MissingDirectory { path })
        }
        Err(source) => return Err(RecordError::Directory { path, source }),
    };
    if !metadata.is_dir() {
        return Err(RecordError::NotADirectory { path });
    }

    let probe = directory.join(format!(".bridge-write-check-{}", std::process::id()));
    let created = std::fs::File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe);
    match created {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            // An empty file needs no data block, so creating one succeeds on
            // a full disk that still has inodes. The available space shows
            // whether the disk is full.
            let full = available_bytes(directory)
                .filter(|available| *available < MIN_AVAILABLE_BYTES)
                .map(|available| format!("{available} bytes available"));
            Ok(full)
        }
        Err(source) if is_disk_full(&source) => Ok(Some(source.to_string())),
        Err(source) => Err(RecordError::Directory { path, source }),
    }
}

/// Returns the bytes that the bridge's user may still write on the file
/// system of `directory`, or `None` when `statvfs` fails.
fn available_bytes(directory: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;

    let path = std::ffi::CString::new(directory.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated, and `stats` is read only after
    // statvfs returned 0, which means it filled the struct.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    Some((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

fn is_disk_full(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Warnings about frames the recording's channel dropped, at most one per
/// `DROP_LOG_INTERVAL`, each with the count since the one before.
#[derive(Default)]
struct DropLog {
    reported: u64,
    logged_at: Option<Instant>,
}

impl DropLog {
    fn note(&mut self, dropped_total: u64) {
        if dropped_total <= self.reported {
            return;
        }
        if self
            .logged_at
            .is_some_and(|at| at.elapsed() < DROP_LOG_INTERVAL)
        {
            return;
        }
        warn!(
            dropped = dropped_total - self.reported,
            dropped_total,
            "the recording fell behind the encoder, as on a slow disk: frames were dropped up to \
             the next keyframe, where a new segment starts"
        );
        self.reported = dropped_total;
        self.logged_at = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(directory: &Path) -> RecordOutput {
        RecordOutput::new(RecordSettings {
            directory: directory.to_path_buf(),
            segment_length: Duration::from_secs(60),
            limits: Limits::default(),
        })
    }

    fn fatal_message(output: &RecordOutput) -> String {
        match output.preflight() {
            Err(OutputError::Fatal { status, message }) => {
                assert_eq!(status, ExitStatus::Usage, "{message}");
                message
            }
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn preflight_accepts_writable_directory() {
        let directory = tempfile::tempdir().unwrap();
        assert!(output(directory.path()).preflight().is_ok());
        let left: Vec<_> = std::fs::read_dir(directory.path()).unwrap().collect();
        assert!(left.is_empty(), "the write check left {left:?}");
    }

    #[test]
    fn preflight_names_directory_and_fix() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let cases = [
            (directory.path().join("missing"), "mkdir -p"),
            (file.clone(), "is not a directory"),
            (file.join("sub"), "give --record an existing directory"),
        ];
        for (path, fix) in cases {
            let message = fatal_message(&output(&path));
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(fix), "{message}");
        }
    }

    #[test]
    fn available_bytes_reads_file_system() {
        let directory = tempfile::tempdir().unwrap();
        let available = available_bytes(directory.path());
        assert!(
            matches!(available, Some(bytes) if bytes > 0),
            "{available:?}"
        );
        assert_eq!(available_bytes(&directory.path().join("missing")), None);
    }

    #[test]
    fn directory_with_space_not_full() {
        let directory = tempfile::tempdir().unwrap();
        let available = available_bytes(directory.path()).unwrap();
        let full = check_directory(directory.path()).unwrap();
        // The check reports the machine's disk as it is, so it is compared
        // with the threshold, not assumed to pass.
        assert_eq!(full.is_some(), available < MIN_AVAILABLE_BYTES, "{full:?}");
    }

    #[test]
    fn preflight_retries_once_started() {
        let directory = tempfile::tempdir().unwrap();
        let mut output = output(&directory.path().join("missing"));
        output.started = true;
        assert!(matches!(
            output.preflight(),
            Err(OutputError::Transient(message)) if message.contains("does not exist")
        ));
    }

    #[test]
    fn sequence_continues_after_highest() {
        let directory = tempfile::tempdir().unwrap();
        assert_eq!(next_sequence_in(directory.path()), 1);
        for name in [
            "bridge-20261204T185900Z-000007.ts",
            "bridge-20261204T190000Z-000003.ts",
            "bridge-20261204T190100Z-999999.mp4",
            "notes.txt",
        ] {
            std::fs::write(directory.path().join(name), b"").unwrap();
        }
        assert_eq!(next_sequence_in(directory.path()), 8);
    }

    #[test]
    fn write_error_cause_leaves_out_file() {
        let error = |path: &str| RecordError::Write {
            path: PathBuf::from(path),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        let first = error("/rec/bridge-20261204T185900Z-000001.ts");
        let second = error("/rec/bridge-20261204T185910Z-000002.ts");
        assert_eq!(first.cause(), second.cause());
        assert!(first.to_string().contains("000001.ts"), "{first}");
        assert!(first.to_string().contains("No space left"), "{first}");
    }
}
