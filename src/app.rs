//! One run of the bridge: plan the capture, choose the encoder, check every
//! output, start the media pipeline and the supervisors, and stop cleanly.

use crate::capture::modes::DEFAULT_MAX_SIZE;
use crate::capture::{self, CapturePlan, SourceSpec};
use crate::config::output_url::{self, OutputUrl};
use crate::config::{ApiSettings, Config, OutputConfig, Size};
use crate::encode::{self, EncodeSettings, GstProber, Platform};
use crate::exit::{ExitStatus, Fatal};
use crate::output::record::RecordOutput;
use crate::output::rtmp::RtmpOutput;
use crate::output::srt::SrtOutput;
use crate::output::whip::WhipOutput;
use crate::output::{AudioCodec, Output};
use crate::pipeline::fanout::{Fanout, TapId};
use crate::pipeline::media::{self, MediaEvent, MediaPipeline, MediaSettings};
use crate::pipeline::KeyframeRequester;
use crate::reload::Reloader;
use crate::supervisor::{BackoffPolicy, Outcome, Supervisor};
use crate::telemetry::http::StatusListener;
use crate::telemetry::notify::ServiceNotifier;
use crate::telemetry::reporter::StatusReporter;
use crate::telemetry::status::{OutputStatus, StatusBoard};
use crate::trax::acquired::AcquiredSource;
use crate::trax::api::{ApiClient, ApiConfig, Protocol, RetryPolicy};
use crate::trax::oauth::UserSession;
use crate::trax::provider::CredentialSource;
use crossbeam_channel::{select, Receiver};
use gstreamer as gst;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use tracing::{error, info, warn};

/// How long a clean stop may take before the bridge exits anyway.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the configuration a config file produced; SIGHUP reloads the
/// file's outputs.
pub fn run_loaded(source: crate::reload::ConfigSource) -> Result<(), Fatal> {
    // Listening starts before the capture and the encoder start, which may
    // take seconds: a SIGHUP then is handled once the outputs run, rather
    // than ending the process, which systemd would not restart.
    let hangups = crate::signals::hangups().map_err(|e| Fatal::new(ExitStatus::Other, e))?;
    let (config, reloader) = source.split();
    run_with(config, Some((reloader, hangups)))
}

pub fn run(config: Config) -> Result<(), Fatal> {
    run_with(config, None)
}

fn run_with(config: Config, reloader: Option<(Reloader, Receiver<i32>)>) -> Result<(), Fatal> {
    gst::init().map_err(|e| Fatal::new(ExitStatus::Other, e))?;
    let status_listener =
        StatusListener::bind(config.status_listen).map_err(|e| Fatal::new(e.exit_status(), e))?;

    let Outputs { outputs, acquired } = build_outputs(&config)?;
    let recording = recording_output(&config);
    preflight(&outputs, &recording)?;

    let plan = capture::plan(&config.source, &config.capture)
        .map_err(|e| Fatal::new(e.exit_status(), e))?;
    info!(source = %plan.summary, "source planned");
    crate::telemetry::journal::set_device(crate::telemetry::journal::device_name(&config.source));

    let settings = encode_settings(&config, &plan);
    let media_has_opus = outputs
        .iter()
        .any(|output| output.audio_codec() == AudioCodec::Opus);
    let selection = encode::select(config.encoder, Platform::current(), &settings, &GstProber)
        .map_err(|e| Fatal::new(e.exit_status(), e))?;
    info!(
        encoder = selection.plan.factory,
        size = %settings.size,
        fps = %settings.fps,
        bitrate_kbps = settings.bitrate_kbps,
        gop_frames = settings.gop_frames,
        profile = settings.profile.caps_name(),
        "encoding"
    );

    let media_settings = MediaSettings {
        capture: &plan,
        looped: config.looped,
        encoder: &selection.plan,
        encode: &settings,
        audio_bitrate_kbps: config.audio_bitrate_kbps,
        opus_bitrate_kbps: media_has_opus.then_some(config.opus_bitrate_kbps),
        av_offset_ms: config.av_offset_ms,
        encoder_request: config.encoder,
    };
    if let Ok(description) = media::describe(&media_settings) {
        tracing::debug!("media pipeline:\n{description}");
    }
    let fanout = Fanout::new();
    let media = MediaPipeline::build(&media_settings, fanout.clone())
        .map_err(|e| Fatal::new(ExitStatus::Other, e))?;

    let (stop_sender, stop) = crossbeam_channel::bounded::<()>(0);
    for source in &acquired {
        source.spawn_renewal(stop.clone());
    }
    let (outcome_sender, outcomes) = crossbeam_channel::unbounded();
    let mut counts = OutputCounts {
        live: outputs.len(),
        total: outputs.len() + usize::from(recording.is_some()),
    };
    let board = StatusBoard::new();
    let _status_server = status_listener
        .map(|listener| listener.serve(&media, board.clone(), &plan.summary))
        .transpose()
        .map_err(|e| Fatal::new(e.exit_status(), e))?;
    let launcher = Launcher {
        fanout: fanout.clone(),
        keyframes: media.keyframes(),
        has_audio: media.has_audio(),
        policy: BackoffPolicy {
            initial: config.reconnect_initial_delay,
            max: config.reconnect_max_delay,
        },
        stop: stop.clone(),
        board: board.clone(),
        outcomes: outcome_sender,
    };
    let mut live = Vec::new();
    for output in outputs {
        live.push(launcher.launch(Role::Live, output)?);
    }
    // A handle dropped would stop its output, so each lives to the end of
    // the run: the recording's here, the live ones here or in the reload.
    let _recording = match recording {
        Some(recording) => Some(launcher.launch(Role::Recording, recording)?),
        None => None,
    };
    let (mut reload, hangups, _live) = match reloader {
        Some((reloader, hangups)) => (
            Some(reloader.start(live, media_has_opus)),
            hangups,
            Vec::new(),
        ),
        None => (None, crossbeam_channel::never(), live),
    };

    media
        .start()
        .map_err(|e| Fatal::new(ExitStatus::Device, e))?;
    info!(
        outputs = counts.live,
        recording = counts.total > counts.live,
        "streaming"
    );

    let notifier = ServiceNotifier::start(board.clone(), fanout.frame_counter());
    let reporter = StatusReporter::start(board, config.status_interval);
    let mut on_hangup = |counts: &mut OutputCounts| {
        if let Some(reload) = reload.as_mut() {
            let changes = reload.reload(&launcher);
            // NOTE: an output that gave up before a reload removed it stays
            // counted as ended, so removing it with the last running output
            // ends the run with its cause instead of keeping the bridge up.
            counts.live = counts.live + changes.started - changes.withdrawn;
            counts.total = counts.total + changes.started - changes.withdrawn;
        }
    };
    let result = watch(
        &config,
        &media,
        &outcomes,
        &mut counts,
        stop_sender,
        Hangups {
            signals: &hangups,
            on_hangup: &mut on_hangup,
        },
    );
    drop(reporter);
    drop(notifier);
    media.shutdown();
    result
}

/// The kind of a supervised output, as the bridge's exit sees it. The
/// recording never keeps the bridge running once every live output has
/// given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Live,
    Recording,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct OutputCounts {
    live: usize,
    /// The live outputs and the recording.
    total: usize,
}

/// SIGHUP and what to do on it: reload the config file's outputs.
struct Hangups<'a> {
    signals: &'a Receiver<i32>,
    on_hangup: &'a mut dyn FnMut(&mut OutputCounts),
}

/// Waits for the end: the duration, a signal, the source ending, a pipeline
/// error, or every live output giving up (every output, when the bridge
/// only records).
fn watch(
    config: &Config,
    media: &MediaPipeline,
    outcomes: &Receiver<(Role, Outcome)>,
    counts: &mut OutputCounts,
    stop_sender: crossbeam_channel::Sender<()>,
    hangups: Hangups<'_>,
) -> Result<(), Fatal> {
    let Hangups {
        signals: hangups,
        on_hangup,
    } = hangups;
    let bus_events = forward_bus(media);
    let signals = crate::signals::listen().map_err(|e| Fatal::new(ExitStatus::Other, e))?;
    let deadline = config
        .duration
        .map(crossbeam_channel::after)
        .unwrap_or_else(crossbeam_channel::never);
    let mut first_failure: Option<(ExitStatus, String)> = None;
    let mut ended = 0;
    let mut live_ended = 0;

    let stop_reason = loop {
        // Set when an output ended or a reload changed the outputs.
        let mut outputs_changed = false;
        select! {
            recv(deadline) -> _ => break "the duration ran out",
            recv(signals) -> _ => break "a stop signal arrived",
            recv(hangups) -> _ => {
                on_hangup(counts);
                outputs_changed = true;
            }
            recv(bus_events) -> message => {
                let Ok(message) = message else { break "the pipeline bus closed" };
                match media.handle_message(&message) {
                    Some(MediaEvent::Ended) => break "the source ended",
                    Some(MediaEvent::Failed { message, from_source }) => {
                        error!(%message, "media pipeline failed");
                        drop(stop_sender);
                        media.request_stop();
                        wait_outputs(outcomes, counts.total - ended);
                        return Err(if from_source {
                            source_failure(config, message)
                        } else {
                            Fatal::new(ExitStatus::Other, anyhow::anyhow!("{message}"))
                        });
                    }
                    None => {}
                }
            }
            recv(outcomes) -> outcome => {
                ended += 1;
                let Ok((role, outcome)) = outcome else { continue };
                if let Outcome::GaveUp { status, cause } = outcome {
                    first_failure.get_or_insert((status, cause));
                }
                if role == Role::Live {
                    live_ended += 1;
                }
                outputs_changed = true;
            }
        }
        // A reload that removes the outputs still running can leave only
        // outputs that gave up, which ends the run as their last outcome would.
        let every_ended = counts.total > 0 && ended == counts.total;
        let every_live_ended = counts.live > 0 && live_ended == counts.live;
        if outputs_changed && (every_ended || every_live_ended) {
            if ended < counts.total {
                info!("every live output gave up; finishing the recording");
                drop(stop_sender);
                media.request_stop();
                wait_outputs(outcomes, counts.total - ended);
            }
            let (status, cause) = first_failure
                .take()
                .unwrap_or((ExitStatus::Other, "every output ended".into()));
            return Err(Fatal::new(
                status,
                anyhow::anyhow!("every output gave up; the first cause: {cause}"),
            ));
        }
    };

    info!(reason = stop_reason, "stopping");
    crate::telemetry::notify::stopping(stop_reason);
    drop(stop_sender);
    media.request_stop();
    let remaining = counts.total - ended;
    match wait_outputs_or_signal(outcomes, remaining, &signals) {
        Stopped::AllFinished => {}
        Stopped::TimedOut => warn!(
            "outputs did not finish within {} s; exiting anyway",
            STOP_TIMEOUT.as_secs()
        ),
        Stopped::SecondSignal => {
            return Err(Fatal::new(
                ExitStatus::Other,
                anyhow::anyhow!(
                    "a second stop signal arrived; exited before every output finished \
                     (SRT drain, RTMP unpublish, WHIP DELETE may be missing)"
                ),
            ));
        }
    }
    Ok(())
}

enum Stopped {
    AllFinished,
    TimedOut,
    SecondSignal,
}

/// Waits for `count` supervisors to end, at most `STOP_TIMEOUT`; another
/// SIGINT or SIGTERM ends the wait at once.
fn wait_outputs_or_signal(
    outcomes: &Receiver<(Role, Outcome)>,
    count: usize,
    signals: &Receiver<i32>,
) -> Stopped {
    let deadline = crossbeam_channel::at(Instant::now() + STOP_TIMEOUT);
    let mut remaining = count;
    while remaining > 0 {
        select! {
            recv(outcomes) -> outcome => {
                if outcome.is_err() {
                    return Stopped::AllFinished;
                }
                remaining -= 1;
            }
            recv(signals) -> _ => {
                warn!("a second stop signal arrived; exiting now");
                return Stopped::SecondSignal;
            }
            recv(deadline) -> _ => return Stopped::TimedOut,
        }
    }
    Stopped::AllFinished
}

/// Turns a capture failure into a device error (exit 4). A V4L2 camera that
/// another program holds opens fine and reports "busy" only once it streams,
/// so the message is matched here to say so plainly.
fn source_failure(config: &Config, message: String) -> Fatal {
    match &config.source {
        SourceSpec::V4l2 { device } => {
            let error = capture::v4l2::error_from_v4l2src(device, &message, "");
            Fatal::new(error.exit_status(), error)
        }
        _ => Fatal::new(ExitStatus::Device, anyhow::anyhow!("{message}")),
    }
}

/// Waits for `count` supervisors to end, at most `STOP_TIMEOUT`.
fn wait_outputs(outcomes: &Receiver<(Role, Outcome)>, count: usize) -> bool {
    let deadline = Instant::now() + STOP_TIMEOUT;
    (0..count).all(|_| outcomes.recv_deadline(deadline).is_ok())
}

fn forward_bus(media: &MediaPipeline) -> Receiver<gst::Message> {
    let (sender, receiver) = crossbeam_channel::unbounded();
    let bus = media.bus();
    thread::Builder::new()
        .name("bus".into())
        .spawn(move || {
            while let Some(message) = bus.timed_pop(gst::ClockTime::NONE) {
                if sender.send(message).is_err() {
                    break;
                }
            }
        })
        .expect("spawning the bus thread");
    receiver
}

/// Derives the encode settings from the request and the planned capture:
/// the source's size (at most 1920x1080) and rate unless the request names
/// them.
pub fn encode_settings(config: &Config, plan: &CapturePlan) -> EncodeSettings {
    let size = config
        .capture
        .size
        .or_else(|| plan.size.map(|size| fit_within(size, DEFAULT_MAX_SIZE)))
        .unwrap_or(DEFAULT_MAX_SIZE);
    let fps = config
        .capture
        .fps
        .or(plan.fps)
        .unwrap_or(crate::config::FrameRate::new(30, 1));
    EncodeSettings {
        size,
        fps,
        bitrate_kbps: config
            .bitrate_kbps
            .unwrap_or_else(|| encode::default_bitrate_kbps(size)),
        gop_frames: encode::gop_frames(config.gop_seconds, fps),
        profile: config.profile,
    }
}

/// Scales `size` down to fit within `max`, keeping its aspect ratio and even
/// dimensions. A size that fits is returned unchanged.
pub fn fit_within(size: Size, max: Size) -> Size {
    if size.width <= max.width && size.height <= max.height {
        return size;
    }
    let scale = f64::min(
        f64::from(max.width) / f64::from(size.width),
        f64::from(max.height) / f64::from(size.height),
    );
    let even = |value: f64| ((value / 2.0).floor() as u32 * 2).max(16);
    Size::new(
        even(f64::from(size.width) * scale),
        even(f64::from(size.height) * scale),
    )
}

fn recording_output(config: &Config) -> Option<Box<dyn Output>> {
    config
        .record
        .clone()
        .map(|settings| Box::new(RecordOutput::new(settings)) as Box<dyn Output>)
}

/// Runs the checks made before capture: no output given twice, and each
/// output's and the recording's own preflight.
fn preflight(
    outputs: &[Box<dyn Output>],
    recording: &Option<Box<dyn Output>>,
) -> Result<(), Fatal> {
    reject_repeated_outputs(outputs)?;
    for output in outputs.iter().chain(recording) {
        preflight_one(output.as_ref())?;
    }
    Ok(())
}

/// Checks one output before it starts; a failure ends the run, or, on a
/// reload, keeps the running configuration.
pub(crate) fn preflight_one(output: &dyn Output) -> Result<(), Fatal> {
    output.preflight().map_err(|e| match e {
        crate::output::OutputError::Fatal { status, message } => {
            Fatal::new(status, anyhow::anyhow!("{}: {message}", output.label()))
        }
        other => Fatal::new(ExitStatus::Other, anyhow::anyhow!("{other}")),
    })
}

/// Runs the checks a run makes before capture for `--print-pipeline`, on
/// the outputs whose credentials and target are given. Outputs that take
/// them from /v1 are left out, since `--print-pipeline` makes no request.
pub fn preflight_without_api(config: &Config) -> Result<(), Fatal> {
    let mut outputs: Vec<Box<dyn Output>> = Vec::new();
    for output in &config.outputs {
        match output {
            OutputConfig::Srt(srt) => {
                if let (Some(credentials), Some((host, port))) = (&srt.credentials, &srt.target) {
                    let settings = srt.settle(host.clone(), *port, Arc::clone(credentials));
                    outputs.push(Box::new(SrtOutput::new(settings)));
                }
            }
            OutputConfig::Rtmp(rtmp) => {
                if let Some(credentials) = &rtmp.credentials {
                    let settings = rtmp.settle(Arc::clone(credentials));
                    outputs.push(Box::new(RtmpOutput::new(settings)));
                }
            }
            OutputConfig::Whip(whip) => {
                if let Some(credentials) = &whip.credentials {
                    let settings = whip.settle(Arc::clone(credentials));
                    outputs.push(Box::new(WhipOutput::new(settings)));
                }
            }
        }
    }
    preflight(&outputs, &recording_output(config))
}

/// Rejects two outputs with the same label (transport, host and path).
/// They would publish one stream path twice, and their status and metrics
/// series would have the same labels.
fn reject_repeated_outputs(outputs: &[Box<dyn Output>]) -> Result<(), Fatal> {
    let mut labels = std::collections::HashSet::new();
    for output in outputs {
        let label = output.label();
        if !labels.insert(label.clone()) {
            return Err(Fatal::new(
                ExitStatus::Usage,
                anyhow::anyhow!(
                    "{label}: this output is given twice; give each --output once, \
                     or a different path to each"
                ),
            ));
        }
    }
    Ok(())
}

/// Starts one supervisor thread per output, fed from the fanout.
pub(crate) struct Launcher {
    fanout: Fanout,
    keyframes: KeyframeRequester,
    has_audio: bool,
    policy: BackoffPolicy,
    /// The bridge's stop; each output has its own besides.
    pub(crate) stop: Receiver<()>,
    board: StatusBoard,
    outcomes: crossbeam_channel::Sender<(Role, Outcome)>,
}

/// How long stopping one output may wait for it to finish, such as an SRT
/// drain, before its replacement starts anyway.
const OUTPUT_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running output, to stop it alone. Dropping the handle stops the
/// output too, between sessions.
pub(crate) struct OutputHandle {
    tap: TapId,
    thread: thread::JoinHandle<()>,
    /// Dropped to stop the output between sessions.
    stop: crossbeam_channel::Sender<()>,
    status: OutputStatus,
    /// Set by whichever comes first: the supervisor reporting its outcome,
    /// or a reload withdrawing the output, whose outcome is then never sent.
    settled: Arc<AtomicBool>,
}

impl Launcher {
    pub(crate) fn launch(
        &self,
        role: Role,
        output: Box<dyn Output>,
    ) -> Result<OutputHandle, Fatal> {
        let frames = self.fanout.add_output_for(output.audio_codec());
        let tap = frames.tap_id();
        let status = self.board.add(output.label(), frames.drop_counter());
        let (stop_sender, output_stop) = crossbeam_channel::bounded(0);
        let supervisor = Supervisor {
            frames,
            output,
            keyframes: self.keyframes.clone(),
            has_audio: self.has_audio,
            policy: self.policy,
            stop: self.stop.clone(),
            output_stop,
            status: status.clone(),
        };
        let outcomes = self.outcomes.clone();
        let settled = Arc::new(AtomicBool::new(false));
        let reported = settled.clone();
        let thread = thread::Builder::new()
            .name("output".into())
            .spawn(move || {
                let outcome = supervisor.run();
                if !reported.swap(true, Ordering::SeqCst) {
                    let _ = outcomes.send((role, outcome));
                }
            })
            .map_err(|e| Fatal::new(ExitStatus::Other, e))?;
        Ok(OutputHandle {
            tap,
            thread,
            stop: stop_sender,
            status,
            settled,
        })
    }

    /// Stops outputs cleanly, all at once: each session gets the end of its
    /// frames, as at the bridge's own stop, and starts no new attempt.
    /// Waits until they have finished, at most `OUTPUT_STOP_TIMEOUT` in
    /// all, so that a replacement never publishes the same stream beside
    /// one of them. Returns how many had not ended yet: their outcomes are
    /// withdrawn, so the run never counts them as outputs that gave up.
    pub(crate) fn stop(&self, handles: Vec<OutputHandle>) -> usize {
        let mut withdrawn = 0;
        let mut stopping = Vec::new();
        for handle in handles {
            if !handle.settled.swap(true, Ordering::SeqCst) {
                withdrawn += 1;
            }
            self.fanout.remove_output(handle.tap);
            drop(handle.stop);
            stopping.push((handle.thread, handle.status));
        }
        let deadline = Instant::now() + OUTPUT_STOP_TIMEOUT;
        let running = |stopping: &[(thread::JoinHandle<()>, OutputStatus)]| {
            stopping.iter().any(|(thread, _)| !thread.is_finished())
        };
        while running(&stopping) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        for (thread, status) in stopping {
            if !thread.is_finished() {
                warn!(
                    output = status.label(),
                    "the output did not finish within {} s; going on",
                    OUTPUT_STOP_TIMEOUT.as_secs()
                );
            }
            self.board.remove(&status);
        }
        withdrawn
    }
}

/// Outputs with their credentials settled: static ones as given, the others
/// acquired through /v1 now, so that a bad key or source fails before capture.
pub(crate) struct Outputs {
    pub(crate) outputs: Vec<Box<dyn Output>>,
    pub(crate) acquired: Vec<Arc<AcquiredSource>>,
}

pub(crate) fn build_outputs(config: &Config) -> Result<Outputs, Fatal> {
    let client = match &config.source_id {
        Some(_) => Some(Arc::new(api_client(&config.api)?)),
        None => None,
    };
    let mut built = Outputs {
        outputs: Vec::new(),
        acquired: Vec::new(),
    };
    for output in &config.outputs {
        match output {
            OutputConfig::Srt(srt) => {
                let (credentials, ingest_url) = settle_credentials(
                    &srt.credentials,
                    config,
                    &client,
                    Protocol::Srt,
                    &mut built,
                )?;
                let (host, port) = srt_target(srt.target.clone(), ingest_url)?;
                let settings = srt.settle(host, port, credentials);
                built.outputs.push(Box::new(SrtOutput::new(settings)));
            }
            OutputConfig::Rtmp(rtmp) => {
                let (credentials, _) = settle_credentials(
                    &rtmp.credentials,
                    config,
                    &client,
                    Protocol::Rtmp,
                    &mut built,
                )?;
                built
                    .outputs
                    .push(Box::new(RtmpOutput::new(rtmp.settle(credentials))));
            }
            OutputConfig::Whip(whip) => {
                let (credentials, _) = settle_credentials(
                    &whip.credentials,
                    config,
                    &client,
                    Protocol::Whip,
                    &mut built,
                )?;
                built
                    .outputs
                    .push(Box::new(WhipOutput::new(whip.settle(credentials))));
            }
        }
    }
    Ok(built)
}

/// Returns an output's credential source, the one given or one acquired
/// through /v1 for `protocol`, and the ingest URL /v1 returned with it.
fn settle_credentials(
    given: &Option<Arc<dyn CredentialSource>>,
    config: &Config,
    client: &Option<Arc<ApiClient>>,
    protocol: Protocol,
    built: &mut Outputs,
) -> Result<(Arc<dyn CredentialSource>, Option<String>), Fatal> {
    match (given, client, &config.source_id) {
        (Some(credentials), _, _) => Ok((Arc::clone(credentials), None)),
        (None, Some(client), Some(source_id)) => {
            let source = AcquiredSource::acquire(Arc::clone(client), source_id, protocol)
                .map_err(|e| Fatal::new(e.exit_status(), e))?;
            let ingest_url = source.ingest_url();
            built.acquired.push(Arc::clone(&source));
            Ok((source as Arc<dyn CredentialSource>, ingest_url))
        }
        _ => Err(Fatal::new(
            ExitStatus::Usage,
            anyhow::anyhow!("an output has no credentials and no --source"),
        )),
    }
}

/// Picks where an SRT output dials: the user's `--output` wins over the
/// ingest URL from /v1, and a difference between them is logged.
fn srt_target(
    user: Option<(String, u16)>,
    ingest_url: Option<String>,
) -> Result<(String, u16), Fatal> {
    let ingest = match &ingest_url {
        Some(url) => match output_url::parse(url) {
            Ok(OutputUrl::Srt { host, port }) => Some((host, port)),
            Ok(OutputUrl::Rtmp { .. } | OutputUrl::Whip { .. }) => {
                warn!("ignoring a non-SRT ingest URL returned for an SRT output");
                None
            }
            Err(error) => {
                warn!(%error, "ignoring the ingest URL the API returned");
                None
            }
        },
        None => None,
    };
    match (user, ingest) {
        (Some(user), Some(ingest)) => {
            if user != ingest {
                warn!(
                    output = %format!("{}:{}", user.0, user.1),
                    ingest = %format!("{}:{}", ingest.0, ingest.1),
                    "--output differs from the ingest URL the API returned; using --output"
                );
            }
            Ok(user)
        }
        (Some(user), None) => Ok(user),
        (None, Some(ingest)) => {
            info!(host = %ingest.0, port = ingest.1, "using the ingest URL the API returned");
            Ok(ingest)
        }
        (None, None) => Err(Fatal::new(
            ExitStatus::Usage,
            anyhow::anyhow!(
                "the API returned no SRT ingest URL for this source; give one with --output srt://host:port"
            ),
        )),
    }
}

/// Builds the /v1 client from the checked settings.
/// Builds the /v1 client with the API key, or without one with the stored
/// login's access token when there is a login.
pub fn api_client(settings: &ApiSettings) -> Result<ApiClient, Fatal> {
    let client = ApiClient::new(ApiConfig {
        origin: settings.origin.clone(),
        key: settings.key.clone(),
        ca_file: settings.ca_file.clone(),
        timeout: settings.timeout,
        retry: RetryPolicy::default(),
    })
    .map_err(|e| Fatal::new(e.exit_status(), e))?;
    if settings.key.is_some() {
        return Ok(client);
    }
    let login = UserSession::load(settings.login_store.clone())
        .map_err(|e| Fatal::new(e.exit_status(), e))?;
    Ok(match login {
        Some(login) => {
            info!(user = %login.who(), "authenticating to the TRaX API with the stored login");
            client.with_login(Arc::new(login))
        }
        None => client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_within_caps_and_keeps_aspect() {
        let max = Size::new(1920, 1080);
        assert_eq!(fit_within(Size::new(1280, 720), max), Size::new(1280, 720));
        assert_eq!(
            fit_within(Size::new(3840, 2160), max),
            Size::new(1920, 1080)
        );
        assert_eq!(
            fit_within(Size::new(4096, 2160), max),
            Size::new(1920, 1012)
        );
        assert_eq!(fit_within(Size::new(1080, 1920), max), Size::new(606, 1080));
    }
}
