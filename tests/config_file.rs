//! The config file end to end: `bridge check` on good and bad files, runs
//! with `--config` against the libsrt receiver peer, and SIGHUP reloads.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::media::output_text;
use support::receiver::{free_udp_port, Receiver};

/// A stream key the tests look for in everything the bridge prints.
const STREAM_KEY: &str = "SeCrEtStreamKey4711xyz";

fn bridge() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bridge"));
    command
        .env_remove("TRAX_SESSION_TOKEN")
        .env_remove("TRAX_STREAM_KEY")
        .env_remove("TRAX_SRT_PASSPHRASE")
        .env_remove("TRAX_API_KEY")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A temporary directory with the config file in it.
struct ConfigDir {
    directory: tempfile::TempDir,
}

impl ConfigDir {
    fn new(text: &str) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let config = Self { directory };
        config.write(text);
        config
    }

    fn path(&self) -> PathBuf {
        self.directory.path().join("bridge.toml")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.directory.path().join(name)
    }

    fn write(&self, text: &str) {
        std::fs::write(self.path(), text).unwrap();
    }

    fn check(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        bridge()
            .arg("check")
            .arg("--config")
            .arg(self.path())
            .args(extra)
            .envs(env.iter().copied())
            .output()
            .expect("the bridge binary runs")
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn error_kinds_name_key_paths() {
    // (file, expected line of the error list)
    let cases: &[(&str, &str)] = &[
        (
            "bitrat = 5\n",
            "bitrat: unknown key; did you mean `bitrate`?",
        ),
        (
            "colour = 5\n",
            "colour: unknown key; examples/bridge.toml lists every key",
        ),
        (
            "gop = \"two\"\n",
            "gop: expected seconds such as 2, found a string",
        ),
        (
            "bitrate = 50\n",
            "bitrate: invalid bitrate 50: give kb/s between 100 and 100000",
        ),
        ("bitrate = -5\n", "bitrate: invalid value -5"),
        ("size = \"1281x720\"\n", "size: invalid size '1281x720'"),
        ("fps = \"fast\"\n", "fps: invalid frame rate 'fast'"),
        ("encoder = \"magic\"\n", "encoder: "),
        (
            "log_level = \"loud\"\n",
            "log_level: invalid log_level 'loud'",
        ),
        (
            "[status]\nlisten = \"nowhere\"\n",
            "status.listen: invalid status.listen 'nowhere'",
        ),
        (
            "[status]\nlisen = \"x\"\n",
            "status.lisen: unknown key; did you mean `listen`?",
        ),
        (
            "[record]\nmax_size = \"20\"\n",
            "record.max_size: invalid size '20'",
        ),
        ("source = \"a b\"\n", "source: invalid source 'a b'"),
        (
            "[record]\ndirectory = \"/nonexistent/bridge-record\"\n",
            "record.directory: /nonexistent/bridge-record is not an existing directory",
        ),
        (
            "[[output]]\nurl = \"srt://127.0.0.1:9000\"\ntoken = \"eyJinline\"\n",
            "output[0].token: a session token may not be written into the config file",
        ),
        (
            "api_key = \"k\"\n",
            "api_key: an API key may not be written into the config file",
        ),
        (
            "[[output]]\nurl = \"srt://127.0.0.1:9000\"\npassphrase = \"p\"\n",
            "output[0].passphrase: an SRT passphrase may not be written",
        ),
        (
            "[[output]]\nurl = \"srt://127.0.0.1:9000\"\nlatency = 5\n",
            "output[0].latency: invalid latency 5: give milliseconds between 20 and 8000",
        ),
        (
            "[[output]]\nurl = \"srt://127.0.0.1:9000\"\nlatncy = 300\n",
            "output[0].latncy: unknown key; did you mean `latency`?",
        ),
        (
            "[[output]]\nurl = \"srt://127.0.0.1:9000\"\n[[output]]\npath = \"x\"\n",
            "output[1].url: missing: give the destination",
        ),
        (
            "[[output]]\nurl = \"ftp://127.0.0.1\"\n",
            "output[0].url: invalid URL 'ftp://127.0.0.1'",
        ),
        (
            "[[output]]\nurl = \"srt://127.0.0.1:9000\"\nice_servers = [\"stun:127.0.0.1:3478\"]\n",
            "output[0].ice_servers: applies to WHIP outputs only, and this output is SRT",
        ),
        (
            "[[output]]\nurl = \"srt://127.0.0.1:9000\"\npbkeylen = 16\n",
            "output[0].pbkeylen: pbkeylen 16 needs a passphrase",
        ),
        (
            "[[output]]\nurl = \"srt://127.0.0.1:9000\"\ntoken_env = \"A\"\ntoken_file = \"/x\"\n",
            "output[0].token_file and output[0].token_env name the same secret",
        ),
        (
            "[[output]]\nurl = \"srt://127.0.0.1:9000\"\ntoken_env = \"BRIDGE_TEST_UNSET\"\n",
            "output[0].token_env: no session token: the environment variable \
             BRIDGE_TEST_UNSET is not set",
        ),
        (
            "[[output]]\nurl = \"srt://127.0.0.1:9000\"\ntoken_credential = \"cam-a\"\n",
            "output[0].token_credential: no session token: the systemd credential cam-a",
        ),
        (
            "[[output]]\nurl = \"srt://127.0.0.1:9000\"\nstream_key_env = \"KEY\"\n",
            "output[0]: url srt://127.0.0.1:9000 needs the stream path: add path",
        ),
        (
            "path = \"p\"\nstream_key_env = \"KEY\"\n[[output]]\nurl = \"srt://127.0.0.1:9000\"\n\
             [[output]]\nurl = \"srt://127.0.0.1:9000\"\n",
            "output[1]: output[0] has the same name or URL 'srt://127.0.0.1:9000'",
        ),
        (
            "encoder = \"auto\"\n",
            "output: no outputs: add an [[output]] table",
        ),
        (
            "source = \"src_1\"\n[[output]]\nurl = \"srt://127.0.0.1:9000\"\n",
            "source: source needs an API key or a login to acquire credentials",
        ),
        ("bitrate = \n", "line 1, column 11: invalid TOML"),
        (
            "[device.\"test\"]\nbitrate = 1\n",
            "device.\"test\".bitrate: invalid bitrate 1",
        ),
        (
            "[[device.\"test\".output]]\nurl = \"srt://127.0.0.1:9000\"\nlatency = 9000\n",
            "device.\"test\".output[0].latency: invalid latency 9000",
        ),
        (
            "[device.\"test\"]\ndevice = \"x\"\n",
            "device.\"test\".device: a device table applies to the device its key names",
        ),
    ];
    for (text, expected) in cases {
        let config = ConfigDir::new(text);
        let output = config.check(&["--device", "test"], &[("KEY", STREAM_KEY)]);
        let shown = output_text(&output);
        assert_eq!(output.status.code(), Some(2), "{text}\n{shown}");
        assert!(
            shown.contains(expected),
            "{text}\nexpected: {expected}\nshown: {shown}"
        );
        assert!(!shown.contains("eyJinline"), "{shown}");
        assert!(!shown.contains(STREAM_KEY), "{shown}");
    }
}

#[test]
fn every_error_reported_in_one_run() {
    let config = ConfigDir::new(
        "bitrat = 5\ngop = 99\nsize = \"odd\"\n\n[[output]]\nurl = \"srt://127.0.0.1:9000\"\n\
         latency = 1\n\n[[output]]\nname = \"b\"\n\n[device.\"test\"]\naudio_bitrate = 1\n",
    );
    let output = config.check(&["--device", "test"], &[]);
    let shown = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{shown}");
    assert!(shown.contains("6 errors in"), "{shown}");
    for path in [
        "bitrat:",
        "gop:",
        "size:",
        "output[0].latency:",
        "output[1].url:",
        "device.\"test\".audio_bitrate:",
    ] {
        assert!(
            shown.contains(&format!("\n  {path}")),
            "no {path} in {shown}"
        );
    }
}

#[test]
fn flags_rejected_next_to_config() {
    let config = ConfigDir::new("[[output]]\nurl = \"srt://127.0.0.1:9000\"\n");
    let output = bridge()
        .arg("--config")
        .arg(config.path())
        .args([
            "--device",
            "test",
            "--bitrate",
            "4000",
            "--output",
            "srt://x:1",
        ])
        .output()
        .unwrap();
    let shown = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("--bitrate, --output cannot be given with --config"),
        "{shown}"
    );
    assert!(shown.contains("set the key in the file instead"), "{shown}");
}

#[test]
fn example_config_checks() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bridge.toml");
    for device in [&["--device", "test"][..], &[]] {
        let output = bridge()
            .arg("check")
            .arg("--config")
            .arg(&example)
            .args(device)
            .env("BRIDGE_EXAMPLE_KEY", STREAM_KEY)
            .output()
            .unwrap();
        let shown = output_text(&output);
        assert_eq!(output.status.code(), Some(0), "{device:?}: {shown}");
        assert!(stdout(&output).starts_with("ok\n"), "{shown}");
        assert!(shown.contains("srt://127.0.0.1:9000"), "{shown}");
        assert!(
            shown.contains("stream key from environment variable BRIDGE_EXAMPLE_KEY"),
            "{shown}"
        );
        assert!(!shown.contains(STREAM_KEY), "{shown}");
    }
}

#[test]
fn check_shows_sources_never_secrets() {
    let config = ConfigDir::new("");
    let credentials = config.file("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("cam-c"), STREAM_KEY).unwrap();
    let key_file = config.file("cam-a.key");
    std::fs::write(&key_file, STREAM_KEY).unwrap();
    config.write(&format!(
        "path = \"inputs/x\"\n\
         [[output]]\nurl = \"srt://127.0.0.1:9000\"\nstream_key_file = {key_file:?}\n\
         [[output]]\nurl = \"srt://127.0.0.1:9001\"\nstream_key_env = \"CAM_B_KEY\"\n\
         [[output]]\nurl = \"srt://127.0.0.1:9002\"\nstream_key_credential = \"cam-c\"\n\
         passphrase_env = \"CAM_C_PASSPHRASE\"\npbkeylen = 16\n"
    ));
    let env = [
        ("CAM_B_KEY", STREAM_KEY),
        ("CAM_C_PASSPHRASE", "PassPhraseSecret99"),
        ("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap()),
    ];
    let output = config.check(&["--device", "test"], &env);
    let shown = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains(&format!("from file {}", key_file.display())),
        "{shown}"
    );
    assert!(
        shown.contains("from environment variable CAM_B_KEY"),
        "{shown}"
    );
    assert!(shown.contains("from systemd credential cam-c"), "{shown}");
    assert!(!shown.contains(STREAM_KEY), "{shown}");
    assert!(!shown.contains("PassPhraseSecret99"), "{shown}");

    // A passphrase too short for libsrt fails without showing it.
    let env = [
        ("CAM_B_KEY", STREAM_KEY),
        ("CAM_C_PASSPHRASE", "Short9"),
        ("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap()),
    ];
    let output = config.check(&["--device", "test"], &env);
    let shown = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("output[2].passphrase_env: the SRT passphrase is 6 characters long"),
        "{shown}"
    );
    assert!(!shown.contains("Short9"), "{shown}");
}

#[test]
fn device_table_applies_by_name() {
    // The table named after the device as given applies, and one for
    // another device does not. Matching through udev links is tested
    // beside the code, on a stand-in /dev/v4l tree.
    let config = ConfigDir::new(
        "path = \"p\"\nstream_key_env = \"KEY\"\n[[output]]\nurl = \"srt://127.0.0.1:9000\"\n\
         [device.\"test\"]\nbitrate = 1500\n[device.\"/dev/video9\"]\nbitrate = 9000\n",
    );
    let output = config.check(&["--device", "test"], &[("KEY", STREAM_KEY)]);
    let shown = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert!(shown.contains("1500 kb/s"), "{shown}");
    assert!(!shown.contains("9000 kb/s"), "{shown}");
}

/// A config file for the test source streaming to SRT receivers on
/// `ports`, each output with the stream key from a systemd credential.
fn srt_config(ports: &[u16], latency: u32) -> String {
    let mut text = String::from(
        "size = \"320x240\"\nstatus_interval = 0\nreconnect_max_delay = 1\n\
         path = \"inputs/srt-config\"\nstream_key_credential = \"cam-key\"\n",
    );
    for (index, port) in ports.iter().enumerate() {
        let latency = if index == 0 { latency } else { 300 };
        text += &format!(
            "[[output]]\nname = \"out{index}\"\nurl = \"srt://127.0.0.1:{port}\"\n\
             latency = {latency}\n"
        );
    }
    text
}

fn key_receiver(port: u16) -> Receiver {
    Receiver::start(
        port,
        &[
            "--stream-key",
            STREAM_KEY,
            "--expected-path",
            "inputs/srt-config",
            "--relisten",
        ],
    )
}

/// Waits until `receiver` has printed `count` events named `name`.
fn wait_for_count(receiver: &Receiver, name: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while receiver.events_named(name).len() < count {
        assert!(
            Instant::now() < deadline,
            "fewer than {count} '{name}' events: {:?}",
            receiver.events()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A bridge run in the background, its log in a file.
struct Running {
    child: std::process::Child,
    log: PathBuf,
}

impl Running {
    fn start(config: &ConfigDir, extra: &[&str]) -> Self {
        let log = config.file("bridge.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = config
            .run(extra)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("the bridge binary runs");
        Self { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn hang_up(&self) {
        // SAFETY: kill on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP);
        }
    }

    fn wait_for_log(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains(text) {
            assert!(Instant::now() < deadline, "no '{text}' in:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the exit (the run's --duration) and returns its code.
    fn wait(mut self) -> Option<i32> {
        self.child.wait().unwrap().code()
    }
}

impl ConfigDir {
    /// A systemd credentials directory with the stream key as `cam-key`.
    fn credentials(&self) -> PathBuf {
        let directory = self.file("credentials");
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(directory.join("cam-key"), STREAM_KEY).unwrap();
        directory
    }

    fn run(&self, extra: &[&str]) -> Command {
        let mut command = bridge();
        command
            .arg("--config")
            .arg(self.path())
            .args(["--device", "test", "--log-level", "debug"])
            .args(extra)
            .env("CREDENTIALS_DIRECTORY", self.credentials());
        command
    }
}

#[test]
fn config_run_reaches_srt_receiver() {
    let _guard = support::setup();
    let port = free_udp_port();
    let receiver = key_receiver(port);
    let config = ConfigDir::new(&srt_config(&[port], 300));

    let output = config.run(&["--duration", "4"]).output().unwrap();
    let events = receiver.stop();
    let shown = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert!(!shown.contains(STREAM_KEY), "the stream key is in the log");

    let connected = events.iter().filter(|e| e["event"] == "connected").count();
    assert_eq!(connected, 1, "{events:?}");
    let stopped = events.iter().find(|e| e["event"] == "stopped").unwrap();
    assert!(stopped["total"].as_u64().unwrap() > 10_000, "{stopped}");
}

#[test]
fn sighup_restarts_changed_output_only() {
    let _guard = support::setup();
    let ports = [free_udp_port(), free_udp_port()];
    let changed = key_receiver(ports[0]);
    let untouched = key_receiver(ports[1]);
    let config = ConfigDir::new(&srt_config(&ports, 300));
    let bridge = Running::start(&config, &["--duration", "12"]);
    wait_for_count(&changed, "connected", 1);
    wait_for_count(&untouched, "connected", 1);

    // The latency is the output's own; the bitrate would need a new
    // media pipeline.
    config.write(&("bitrate = 900\n".to_string() + &srt_config(&ports, 500)));
    bridge.hang_up();
    wait_for_count(&changed, "connected", 2);
    bridge.wait_for_log("started the output");
    let code = bridge.wait();

    let log = std::fs::read_to_string(config.file("bridge.log")).unwrap();
    let changed = changed.stop();
    let untouched = untouched.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("stopping the output: its settings changed"),
        "{log}"
    );
    assert!(log.contains("latency_ms=500"), "{log}");
    let restart_needed = log
        .lines()
        .find(|line| line.contains("needs a restart to apply"))
        .unwrap_or_else(|| panic!("no 'needs a restart' line:\n{log}"));
    assert!(
        restart_needed.contains("setting=bitrate"),
        "{restart_needed}"
    );
    assert!(!log.contains(STREAM_KEY), "the stream key is in the log");

    let count = |events: &[serde_json::Value], name: &str| {
        events.iter().filter(|e| e["event"] == name).count()
    };
    assert_eq!(count(&changed, "connected"), 2, "{changed:?}");
    assert_eq!(count(&untouched, "connected"), 1, "{untouched:?}");
    // The untouched output's one stream ends once, when the bridge stops.
    assert_eq!(count(&untouched, "eos"), 1, "{untouched:?}");
}

#[test]
fn sighup_with_invalid_file_keeps_running() {
    let _guard = support::setup();
    let port = free_udp_port();
    let receiver = key_receiver(port);
    let config = ConfigDir::new(&srt_config(&[port], 300));
    let bridge = Running::start(&config, &["--duration", "8"]);
    wait_for_count(&receiver, "connected", 1);

    config.write(&("bitrat = 3000\n".to_string() + &srt_config(&[port], 5)));
    bridge.hang_up();
    bridge.wait_for_log("the config file is invalid");
    let code = bridge.wait();

    let log = std::fs::read_to_string(config.file("bridge.log")).unwrap();
    let events = receiver.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("output[0].latency: invalid latency 5"),
        "{log}"
    );
    assert!(
        log.contains("bitrat: unknown key; did you mean `bitrate`?"),
        "{log}"
    );
    assert!(!log.contains("stopping the output"), "{log}");

    // One connection that lasted to the end of the run.
    let connected = events.iter().filter(|e| e["event"] == "connected").count();
    assert_eq!(connected, 1, "{events:?}");
    let eos = events.iter().filter(|e| e["event"] == "eos").count();
    assert_eq!(eos, 1, "{events:?}");
    assert_eq!(log.matches("SRT connection closed").count(), 1, "{log}");
}

#[test]
fn config_run_retries_until_receiver_listens() {
    let _guard = support::setup();
    let port = free_udp_port();
    let config = ConfigDir::new(&srt_config(&[port], 300));
    let bridge = Running::start(&config, &["--duration", "8"]);
    bridge.wait_for_log("connection failed; reconnecting");

    let receiver = key_receiver(port);
    wait_for_count(&receiver, "connected", 1);
    let code = bridge.wait();
    let events = receiver.stop();
    let log = std::fs::read_to_string(config.file("bridge.log")).unwrap();
    assert_eq!(code, Some(0), "{log}");
    let stopped = events.iter().find(|e| e["event"] == "stopped").unwrap();
    assert!(stopped["total"].as_u64().unwrap() > 0, "{events:?}");
}

#[test]
fn output_secret_source_overrides_top_level() {
    let config = ConfigDir::new("");
    let key_file = config.file("b.key");
    std::fs::write(&key_file, STREAM_KEY).unwrap();
    config.write(&format!(
        "path = \"p\"\ntoken_env = \"TOP_TOKEN\"\n\
         [[output]]\nurl = \"srt://127.0.0.1:9000\"\n\
         [[output]]\nurl = \"srt://127.0.0.1:9001\"\nstream_key_file = {key_file:?}\n"
    ));
    let output = config.check(&["--device", "test"], &[("TOP_TOKEN", "a.b.c")]);
    let shown = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("9000, path p, session token from environment variable TOP_TOKEN"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "9001, path p, stream key from file {}",
            key_file.display()
        )),
        "{shown}"
    );
}

#[test]
fn example_documents_every_key() {
    use bridge::config::file::keys;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bridge.toml");
    let text = std::fs::read_to_string(example).unwrap();
    let all = [
        keys::GLOBAL_KEYS,
        keys::OUTPUT_KEYS,
        keys::OUTPUT_ONLY_KEYS,
        keys::RECORD_KEYS,
        keys::STATUS_KEYS,
    ]
    .concat();
    for key in all {
        // The secrets' sources are documented by their pattern,
        // <secret>_file, <secret>_env and <secret>_credential.
        let secret_source = ["_file", "_env", "_credential"]
            .iter()
            .any(|suffix| key.ends_with(suffix))
            && !["ca_file", "api_ca_file", "oauth_ca_file"].contains(&key);
        if secret_source {
            let base = key.rsplit_once('_').unwrap().0;
            let base = base.strip_suffix("_credential").unwrap_or(base);
            assert!(
                text.contains(base),
                "examples/bridge.toml never names {base}"
            );
            continue;
        }
        let set = format!("{key} =");
        assert!(
            text.contains(&set),
            "examples/bridge.toml does not document {key}"
        );
    }
}

#[test]
fn sighup_removing_every_output_keeps_recording() {
    let _guard = support::setup();
    let port = free_udp_port();
    let receiver = key_receiver(port);
    let config = ConfigDir::new("");
    let recordings = config.file("recordings");
    std::fs::create_dir(&recordings).unwrap();
    let record = format!("[record]\ndirectory = {recordings:?}\n");
    config.write(&(srt_config(&[port], 300) + &record));
    let bridge = Running::start(&config, &["--duration", "8"]);
    wait_for_count(&receiver, "connected", 1);

    // The same run-wide settings and recording, and no [[output]] left.
    let without_outputs = srt_config(&[], 300) + &record;
    config.write(&without_outputs);
    bridge.hang_up();
    bridge.wait_for_log("stopping the output: it was removed");
    let code = bridge.wait();

    let log = std::fs::read_to_string(config.file("bridge.log")).unwrap();
    let events = receiver.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("gave up"), "{log}");
    assert!(
        log.contains("stopping reason=\"the duration ran out\""),
        "{log}"
    );
    let eos = events.iter().filter(|e| e["event"] == "eos").count();
    assert_eq!(eos, 1, "{events:?}");
    let segments = std::fs::read_dir(&recordings).unwrap().count();
    assert!(segments >= 1, "no segment in {}", recordings.display());
}

/// Runs `bridge check` on `path` and returns its output, failing the test
/// when the check has not ended within 20 s.
fn check_file_in_time(path: &Path) -> Output {
    let mut child = bridge()
        .arg("check")
        .arg("--config")
        .arg(path)
        .spawn()
        .expect("the bridge binary runs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("bridge check --config {} did not end", path.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn oversized_file_rejected() {
    let config = ConfigDir::new("");
    let mut text = String::from("bitrate = 3000\n");
    while text.len() <= 2 << 20 {
        text += "# a comment that pads the file out past any real config file\n";
    }
    config.write(&text);
    for path in [config.path(), PathBuf::from("/dev/zero")] {
        let output = check_file_in_time(&path);
        let shown = output_text(&output);
        assert_eq!(output.status.code(), Some(2), "{shown}");
        assert!(shown.contains("larger than 1 MiB"), "{shown}");
    }
}

#[test]
fn non_utf8_file_names_line() {
    let config = ConfigDir::new("");
    std::fs::write(config.path(), b"bitrate = 3000\n# caf\xe9\n").unwrap();
    let output = config.check(&[], &[]);
    let shown = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("line 2, column 6: not UTF-8 text: save the file as UTF-8"),
        "{shown}"
    );
}

#[test]
fn unreadable_paths_say_what_to_give() {
    let config = ConfigDir::new("");
    let cases = [
        (
            config.file("missing.toml"),
            "no such file: give the path of the config file",
        ),
        (
            config.directory.path().to_path_buf(),
            "a directory: give the path of the config file in it",
        ),
    ];
    for (path, expected) in cases {
        let output = check_file_in_time(&path);
        let shown = output_text(&output);
        assert_eq!(output.status.code(), Some(2), "{shown}");
        assert!(shown.contains(expected), "{shown}");
    }
}

#[test]
fn check_rejects_streamid_the_run_rejects() {
    let config = ConfigDir::new("");
    let key_file = config.file("colon.key");
    std::fs::write(&key_file, "part:rest").unwrap();
    config.write(&format!(
        "stream_key_env = \"CAM_KEY\"\n\
         [[output]]\nurl = \"srt://127.0.0.1:9000\"\npath = \"inputs:cam\"\n\
         [[output]]\nurl = \"srt://127.0.0.1:9001\"\npath = \"inputs/cam\"\n\
         stream_key_file = {key_file:?}\n"
    ));
    let output = config.check(&["--device", "test"], &[("CAM_KEY", STREAM_KEY)]);
    let shown = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("output[0].path: the SRT path 'inputs:cam' contains ':'"),
        "{shown}"
    );
    assert!(
        shown.contains("output[1].stream_key_file: the stream key contains ':' at byte 4"),
        "{shown}"
    );
    assert!(!shown.contains("part:rest"), "{shown}");
    assert!(!shown.contains(STREAM_KEY), "{shown}");
}

#[test]
fn secret_written_as_source_name_not_shown() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjYW0ifQ.c2lnbmF0dXJlLXZhbHVl";
    let config = ConfigDir::new(&format!(
        "path = \"inputs/cam\"\n\
         [[output]]\nurl = \"srt://127.0.0.1:9000\"\ntoken_env = \"{jwt}\"\n\
         [[output]]\nurl = \"srt://127.0.0.1:9001\"\ntoken_credential = \"{jwt}\"\n"
    ));
    let output = config.check(&["--device", "test"], &[]);
    let shown = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{shown}");
    assert!(!shown.contains("eyJhbGci"), "{shown}");
    assert!(
        shown.contains("output[0].token_env: not an environment variable name"),
        "{shown}"
    );
    assert!(
        shown.contains("output[1].token_credential: looks like the secret itself"),
        "{shown}"
    );
}

#[test]
fn url_errors_name_keys_not_flags() {
    let urls = [
        "srt://trax:secret@127.0.0.1:9000",
        "srt://127.0.0.1:9000?latency=200",
        "srt://127.0.0.1:9000/inputs/cam",
        "rtmp://trax:secret@127.0.0.1/inputs/cam",
        "https://trax:secret@127.0.0.1:8889/inputs/cam/whip",
    ];
    for url in urls {
        let config = ConfigDir::new(&format!("[[output]]\nurl = \"{url}\"\n"));
        let output = config.check(&["--device", "test"], &[]);
        let shown = output_text(&output);
        assert_eq!(output.status.code(), Some(2), "{shown}");
        let line = shown
            .lines()
            .find(|line| line.contains("output[0].url: invalid URL"))
            .unwrap_or_else(|| panic!("no url error for {url}:\n{shown}"));
        assert!(!line.contains("--"), "{line}");
    }
}

#[test]
fn check_reads_ca_files() {
    let config = ConfigDir::new("");
    let missing = config.file("missing-ca.pem");
    let not_pem = config.file("not-a-ca.pem");
    std::fs::write(&not_pem, "no certificate here\n").unwrap();
    config.write(&format!(
        "stream_key_env = \"CAM_KEY\"\npath = \"inputs/cam\"\n\
         [[output]]\nurl = \"rtmps://127.0.0.1/inputs/cam\"\nca_file = {missing:?}\n\
         [[output]]\nurl = \"https://127.0.0.1:8889/inputs/cam/whip\"\nca_file = {not_pem:?}\n\
         token_env = \"CAM_TOKEN\"\n\
         [[output]]\nurl = \"srt://127.0.0.1:9000\"\nca_file = {not_pem:?}\n"
    ));
    let env = [("CAM_KEY", STREAM_KEY), ("CAM_TOKEN", "a.b.c")];
    let output = config.check(&["--device", "test"], &env);
    let shown = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{shown}");
    let expected = [
        format!("output[0].ca_file: cannot use {}: ", missing.display()),
        format!("output[1].ca_file: cannot use {}: ", not_pem.display()),
        "output[2].ca_file: applies to RTMPS and https WHIP outputs only".to_string(),
    ];
    for line in expected {
        assert!(shown.contains(&line), "no '{line}' in:\n{shown}");
    }

    config.write(&format!(
        "source = \"src_1\"\napi_url = \"http://127.0.0.1:9\"\n\
         api_key_env = \"CAM_KEY\"\napi_ca_file = {missing:?}\n"
    ));
    let output = config.check(&["--device", "test"], &env);
    let shown = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{shown}");
    let line = format!("api_ca_file: cannot use {}: ", missing.display());
    assert!(shown.contains(&line), "no '{line}' in:\n{shown}");
}

#[test]
fn sighup_during_startup_is_not_fatal() {
    let _guard = support::setup();
    let port = free_udp_port();
    let receiver = key_receiver(port);
    let config = ConfigDir::new(&srt_config(&[port], 300));
    let bridge = Running::start(&config, &["--duration", "4"]);
    // The source is planned before the encoder's test encode and the
    // media pipeline, which take a while more.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bridge.log().contains("source planned") {
        assert!(Instant::now() < deadline, "{}", bridge.log());
        std::thread::sleep(Duration::from_millis(2));
    }
    bridge.hang_up();
    let code = bridge.wait();

    let log = std::fs::read_to_string(config.file("bridge.log")).unwrap();
    receiver.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("SIGHUP: reloading the config file"), "{log}");
}

#[test]
fn misplaced_keys_say_where_they_go() {
    let cases: &[(&str, &str)] = &[
        (
            "url = \"srt://127.0.0.1:9000\"\n",
            "url: belongs in an [[output]] table",
        ),
        ("name = \"main\"\n", "name: belongs in an [[output]] table"),
        (
            "[[output]]\nurl = \"srt://127.0.0.1:9000\"\nbitrate = 3000\n",
            "output[0].bitrate: a run-wide setting, not an output's",
        ),
        (
            "[[output]]\nurl = \"srt://127.0.0.1:9000\"\n[output.record]\ndirectory = \"/tmp\"\n",
            "output[0].record: a run-wide setting, not an output's",
        ),
        (
            "[device.test]\ndevice = \"/dev/video0\"\n",
            "device.\"test\".device: a device table applies to the device its key names",
        ),
        (
            "directory = \"/tmp\"\n",
            "directory: belongs in the [record] table",
        ),
        (
            "listen = \"127.0.0.1:8181\"\n",
            "listen: belongs in the [status] table",
        ),
    ];
    for (text, expected) in cases {
        let config = ConfigDir::new(text);
        let output = config.check(&["--device", "test"], &[]);
        let shown = output_text(&output);
        assert_eq!(output.status.code(), Some(2), "{text}\n{shown}");
        assert!(
            shown.contains(expected),
            "{text}\nno '{expected}' in:\n{shown}"
        );
    }
}

#[test]
fn device_table_sets_log_level() {
    let _guard = support::setup();
    let port = free_udp_port();
    let receiver = key_receiver(port);
    let text = format!(
        "log_level = \"warn\"\n{}[device.test]\nlog_level = \"debug\"\n",
        srt_config(&[port], 300)
    );
    let config = ConfigDir::new(&text);
    let output = bridge()
        .arg("--config")
        .arg(config.path())
        .args(["--device", "test", "--duration", "2"])
        .env("CREDENTIALS_DIRECTORY", config.credentials())
        .output()
        .unwrap();
    receiver.stop();
    let shown = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert!(shown.contains(" DEBUG "), "no debug line in:\n{shown}");
}

#[test]
fn status_port_in_use_names_no_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let config = ConfigDir::new(&format!(
        "status = {{ listen = \"{address}\" }}\n{}",
        srt_config(&[free_udp_port()], 300)
    ));
    let output = config.run(&["--duration", "2"]).output().unwrap();
    let shown = output_text(&output);
    // The bridge streams without the page while the port is taken, until
    // the duration ends.
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert!(shown.contains("already in use"), "{shown}");
    assert!(!shown.contains("--status-listen"), "{shown}");
}

#[test]
fn every_record_error_reported_at_once() {
    let config = ConfigDir::new(
        "[record]\ndirectory = \"\"\nsegment = 0\nmax_size = \"lots\"\nmax_age = \"\"\n",
    );
    let output = config.check(&["--device", "test"], &[]);
    let shown = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{shown}");
    for key in ["directory", "segment", "max_size", "max_age"] {
        let path = format!("record.{key}: ");
        assert!(shown.contains(&path), "no '{path}' in:\n{shown}");
    }
}

#[test]
fn bad_url_hides_no_other_error() {
    let config = ConfigDir::new(
        "[[output]]\nurl = \"ftp://127.0.0.1\"\nlatency = \"high\"\nstream_key_env = \"\"\n\
         name = 7\n",
    );
    let output = config.check(&["--device", "test"], &[]);
    let shown = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{shown}");
    for key in ["url", "latency", "stream_key_env", "name"] {
        let path = format!("output[0].{key}: ");
        assert!(shown.contains(&path), "no '{path}' in:\n{shown}");
    }
}

#[test]
fn sighup_leaving_only_failed_outputs_exits() {
    let _guard = support::setup();
    let ports = [free_udp_port(), free_udp_port()];
    let rejecting = Receiver::start(ports[0], &["--reject-all", "--relisten"]);
    let working = key_receiver(ports[1]);
    let config = ConfigDir::new(&srt_config(&ports, 300));
    let bridge = Running::start(&config, &["--duration", "30"]);
    wait_for_count(&working, "connected", 1);
    bridge.wait_for_log("giving up on this output");

    // Only the output that gave up is left.
    config.write(&srt_config(&ports[..1], 300));
    bridge.hang_up();
    let started = Instant::now();
    let code = bridge.wait();

    let log = std::fs::read_to_string(config.file("bridge.log")).unwrap();
    rejecting.stop();
    working.stop();
    assert_eq!(code, Some(3), "{log}");
    assert!(log.contains("every output gave up"), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the bridge ran on to its --duration:\n{log}"
    );
}
