//! The bridge as systemd runs it, without systemd. The template unit's own
//! ExecStart line runs with the test build's binary, and with a
//! notification socket and a journal socket that the test owns. The
//! session token is a systemd credential, and the libsrt receiver on
//! loopback is the output.
//!
//! Checked: `READY=1` once the output is live, `WATCHDOG=1` pings while
//! frames flow (during a video stall too, since the slate is encoded),
//! none while the process is stopped with SIGSTOP, `STOPPING=1` on
//! SIGTERM, and journal entries with device, output and attempt fields and
//! no secret.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::bridge_process::send_signal;
use support::receiver::{free_udp_port, Receiver};

/// The stream path of the example config's first output.
const PATH: &str = "inputs/srt-example";

/// The unit's ExecStart line as arguments, with the binary and the device
/// replaced for this test and `/etc/bridge/bridge.toml` replaced by a copy
/// of `examples/bridge.toml` written into `directory`. The copy differs
/// from the example only in its loopback ports, one stream path and in
/// taking the session token from the systemd credential
/// `trax-session-token`, as an appliance's config would.
fn exec_start(directory: &Path, device: &str, port: u16) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("systemd/bridge@.service")).unwrap();
    let line = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart line");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words[0], "/usr/bin/bridge", "{line}");

    let config = directory.join("bridge.toml");
    std::fs::write(&config, example_config(port)).unwrap();
    let mut args = vec![env!("CARGO_BIN_EXE_bridge").to_string()];
    let mut rest = words[1..].iter();
    while let Some(word) = rest.next() {
        match *word {
            "--config" => {
                assert_eq!(rest.next(), Some(&"/etc/bridge/bridge.toml"), "{line}");
                args.push("--config".into());
                args.push(config.to_str().unwrap().into());
            }
            "/dev/%I" => args.push(device.to_string()),
            other => args.push(other.to_string()),
        }
    }
    assert!(args.iter().any(|arg| arg == device), "{line}");
    args
}

/// Returns `examples/bridge.toml` with its first SRT output on `port`, its
/// second on a port where nothing listens and on the first one's path, the
/// status server on a free port, and the credential from
/// `trax-session-token`.
fn example_config(port: u16) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(root.join("examples/bridge.toml")).unwrap();
    let status_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let replacements = [
        (
            "srt://127.0.0.1:9000".to_string(),
            format!("srt://127.0.0.1:{port}"),
        ),
        (
            "srt://127.0.0.1:9001".to_string(),
            format!("srt://127.0.0.1:{}", free_udp_port()),
        ),
        (
            "listen = \"127.0.0.1:8181\"".to_string(),
            format!("listen = \"127.0.0.1:{status_port}\""),
        ),
        (
            "stream_key_env = \"BRIDGE_EXAMPLE_KEY\"".to_string(),
            "token_credential = \"trax-session-token\"".to_string(),
        ),
        // The test's one token is for PATH, and the bridge checks each
        // output's token against its path before it starts.
        (
            "path = \"inputs/srt-backup\"".to_string(),
            format!("path = \"{PATH}\""),
        ),
    ];
    for (from, to) in replacements {
        assert!(text.contains(&from), "examples/bridge.toml has no '{from}'");
        text = text.replace(&from, &to);
    }
    text
}

/// Datagrams with their arrival times.
type Datagrams = Arc<Mutex<Vec<(Instant, Vec<u8>)>>>;

/// A datagram socket in place of systemd's notification socket or
/// journald's, which keeps what arrives with its arrival time.
struct Socket {
    path: PathBuf,
    received: Datagrams,
}

impl Socket {
    fn bind(path: PathBuf) -> Self {
        let socket = UnixDatagram::bind(&path).unwrap();
        let received = Datagrams::default();
        let sink = received.clone();
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 256 * 1024];
            while let Ok(length) = socket.recv(&mut buffer) {
                sink.lock()
                    .unwrap()
                    .push((Instant::now(), buffer[..length].to_vec()));
            }
        });
        Self { path, received }
    }

    fn messages(&self) -> Vec<(Instant, String)> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(at, bytes)| (*at, String::from_utf8_lossy(bytes).into_owned()))
            .collect()
    }

    /// Waits up to `timeout` for a message for which `found` holds.
    fn wait_for(&self, timeout: Duration, found: impl Fn(&str) -> bool) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some((at, _)) = self.messages().iter().find(|(_, m)| found(m)) {
                return Some(*at);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Returns the arrival times of `WATCHDOG=1` pings.
    fn pings(&self) -> Vec<Instant> {
        self.messages()
            .into_iter()
            .filter(|(_, m)| m.lines().any(|line| line == "WATCHDOG=1"))
            .map(|(at, _)| at)
            .collect()
    }
}

/// The bridge's standard error, line by line with arrival times.
type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

fn collect_lines(child: &mut Child) -> Lines {
    let lines: Lines = Arc::default();
    let sink = lines.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push((Instant::now(), line));
        }
    });
    lines
}

fn wait_for_line(lines: &Lines, text: &str, timeout: Duration) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some((at, _)) = lines.lock().unwrap().iter().find(|(_, l)| l.contains(text)) {
            return *at;
        }
        assert!(
            Instant::now() < deadline,
            "the bridge logged no '{text}': {:?}",
            lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A token for `PATH` and a receiver that checks it, listening on `port`.
struct Peer {
    token: String,
    public_key: PathBuf,
}

fn mint(directory: &Path) -> Peer {
    let key = directory.join("key.pem");
    let public_key = directory.join("key.pub.pem");
    let token = support::mint_token(&[
        "--key",
        key.to_str().unwrap(),
        "--public-key-out",
        public_key.to_str().unwrap(),
        "--path",
        PATH,
    ]);
    Peer { token, public_key }
}

fn start_receiver(port: u16, peer: &Peer) -> Receiver {
    Receiver::start(
        port,
        &[
            "--expected-path",
            PATH,
            "--public-key",
            peer.public_key.to_str().unwrap(),
        ],
    )
}

/// Writes the token as the systemd credential `trax-session-token` and
/// returns the credentials directory.
fn credentials(directory: &Path, token: &str) -> PathBuf {
    let credentials = directory.join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    let file = credentials.join("trax-session-token");
    std::fs::write(&file, token).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    credentials
}

fn service_command(args: &[String], credentials: &Path) -> Command {
    let mut command = Command::new(&args[0]);
    command
        .args(&args[1..])
        .env("CREDENTIALS_DIRECTORY", credentials)
        .env_remove("TRAX_SESSION_TOKEN")
        .env_remove("TRAX_STREAM_KEY")
        .env_remove("TRAX_API_KEY")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM")
        .env("RUST_LOG", "bridge=info")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

#[test]
fn notify_ready_watchdog_and_stop() {
    let directory = tempfile::tempdir().unwrap();
    let peer = mint(directory.path());
    let port = free_udp_port();
    let receiver = start_receiver(port, &peer);
    let notify = Socket::bind(directory.path().join("notify"));

    // The video stalls from 6 s to 11 s; the slate fills the gap.
    let args = exec_start(directory.path(), "test-faults:stall=6+5", port);
    let started = Instant::now();
    let mut child = service_command(&args, &credentials(directory.path(), &peer.token))
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", "2000000")
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bridge binary runs");
    let lines = collect_lines(&mut child);
    let pid = child.id();

    let ready = notify
        .wait_for(Duration::from_secs(30), |m| {
            m.lines().any(|l| l == "READY=1")
        })
        .unwrap_or_else(|| {
            panic!(
                "no READY=1: {:?}\nthe bridge logged: {:?}",
                notify.messages(),
                lines.lock().unwrap()
            )
        });
    // The receiver saw the connection by the time the output counted as live.
    let connected = receiver.wait_for("connected", Duration::from_secs(5));
    assert!(connected["peer"].is_string(), "{connected}");
    let first_status = notify.messages();
    let ready_message = first_status
        .iter()
        .find(|(at, _)| *at == ready)
        .map(|(_, m)| m.clone())
        .unwrap();
    // The example's second output has no receiver.
    assert!(
        ready_message.contains("STATUS=streaming: 1 of 2 outputs live"),
        "{ready_message}"
    );

    // Pings go on through the stall, while the slate is on air.
    let lost = wait_for_line(&lines, "source lost", Duration::from_secs(20));
    let back = wait_for_line(&lines, "source back", Duration::from_secs(20));
    let during_stall = notify
        .pings()
        .into_iter()
        .filter(|at| *at > lost && *at < back)
        .count();
    assert!(
        during_stall >= 2,
        "{during_stall} pings in the {:?} of slate",
        back - lost
    );

    // No pings while the process is stopped, pings again once it runs.
    // A ping sent just before the stop may still be in the socket, so
    // counting starts 0.5 s after SIGSTOP.
    send_signal(pid, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(500));
    let before = notify.pings().len();
    let stopped_at = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let after = notify.pings().len();
    let stopped_for = stopped_at.elapsed();
    send_signal(pid, libc::SIGCONT);
    let continued_at = Instant::now();
    assert_eq!(
        after - before,
        0,
        "pings arrived in {stopped_for:?} while stopped: {:?}",
        notify
            .pings()
            .iter()
            .map(|at| at.saturating_duration_since(stopped_at))
            .collect::<Vec<_>>()
    );
    let deadline = continued_at + Duration::from_secs(5);
    while !notify.pings().iter().any(|at| *at > continued_at) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        notify.pings().iter().any(|at| *at > continued_at),
        "no ping within 5 s after SIGCONT"
    );

    send_signal(pid, libc::SIGTERM);
    let stopping = notify.wait_for(Duration::from_secs(10), |m| {
        m.lines().any(|l| l == "STOPPING=1")
    });
    assert!(stopping.is_some(), "no STOPPING=1: {:?}", notify.messages());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{:?}", lines.lock().unwrap());

    let ready_count = notify
        .messages()
        .iter()
        .filter(|(_, m)| m.lines().any(|l| l == "READY=1"))
        .count();
    assert_eq!(ready_count, 1);
    let pings = notify.pings();
    assert!(
        pings.len() >= 5,
        "{} pings in {:?}",
        pings.len(),
        started.elapsed()
    );
    receiver.stop();
}

/// Parses a native-protocol journal entry into its fields.
fn parse_entry(bytes: &[u8]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let line_end = rest
            .iter()
            .position(|&b| b == b'\n')
            .expect("a field ends with \\n");
        let line = &rest[..line_end];
        if let Some(equals) = line.iter().position(|&b| b == b'=') {
            let name = String::from_utf8_lossy(&line[..equals]).into_owned();
            let value = String::from_utf8_lossy(&line[equals + 1..]).into_owned();
            fields.push((name, value));
            rest = &rest[line_end + 1..];
        } else {
            let name = String::from_utf8_lossy(line).into_owned();
            let after = &rest[line_end + 1..];
            let length = u64::from_le_bytes(after[..8].try_into().unwrap()) as usize;
            let value = String::from_utf8_lossy(&after[8..8 + length]).into_owned();
            assert_eq!(after[8 + length], b'\n');
            fields.push((name, value));
            rest = &after[8 + length + 1..];
        }
    }
    fields
}

fn field<'a>(entry: &'a [(String, String)], name: &str) -> Option<&'a str> {
    entry
        .iter()
        .find(|(field, _)| field == name)
        .map(|(_, value)| value.as_str())
}

#[test]
fn journal_entries_carry_fields_and_no_secret() {
    let directory = tempfile::tempdir().unwrap();
    let peer = mint(directory.path());
    let port = free_udp_port();
    let journal = Socket::bind(directory.path().join("journal.socket"));

    // Standard error is a pipe whose device and inode go in JOURNAL_STREAM,
    // as systemd does for the stream it connects to the journal.
    let (reader, writer) = std::io::pipe().unwrap();
    let identity = std::fs::File::from(std::os::fd::OwnedFd::from(writer.try_clone().unwrap()))
        .metadata()
        .unwrap();
    let journal_stream = format!("{}:{}", identity.dev(), identity.ino());

    let args = exec_start(directory.path(), "test", port);
    let mut child = service_command(&args, &credentials(directory.path(), &peer.token))
        .env("JOURNAL_STREAM", &journal_stream)
        .env("BRIDGE_JOURNAL_SOCKET", &journal.path)
        .stderr(writer)
        .spawn()
        .expect("the bridge binary runs");
    let stderr_text = Arc::new(Mutex::new(String::new()));
    let sink = stderr_text.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&line);
        }
    });

    // No receiver yet: attempt 1 fails and is logged with its cause.
    let failed = journal.wait_for(Duration::from_secs(30), |m| {
        m.contains("connection failed; reconnecting")
    });
    assert!(
        failed.is_some(),
        "no failure entry: {:?}",
        journal.messages()
    );
    let receiver = start_receiver(port, &peer);
    receiver.wait_for("connected", Duration::from_secs(30));
    let live = journal.wait_for(Duration::from_secs(20), |m| m.contains("\nATTEMPT=2\n"));
    assert!(
        live.is_some(),
        "no entry for attempt 2: {:?}",
        journal.messages()
    );
    send_signal(child.id(), libc::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    receiver.stop();

    let entries: Vec<Vec<(String, String)>> = journal
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, bytes)| parse_entry(bytes))
        .collect();
    assert!(!entries.is_empty());
    for entry in &entries {
        assert!(field(entry, "MESSAGE").is_some(), "{entry:?}");
        assert!(field(entry, "PRIORITY").is_some(), "{entry:?}");
        assert_eq!(field(entry, "SYSLOG_IDENTIFIER"), Some("bridge"));
    }
    let with_message = |text: &str| {
        entries
            .iter()
            .filter(|entry| field(entry, "MESSAGE").is_some_and(|m| m.contains(text)))
            .collect::<Vec<_>>()
    };
    let streaming = with_message("streaming");
    assert!(!streaming.is_empty());
    assert_eq!(field(streaming[0], "DEVICE"), Some("test"));

    let output = format!("srt://127.0.0.1:{port}");
    // The example's second output never connects; only the first is
    // checked here.
    let failures = with_message("connection failed; reconnecting");
    let failure = failures
        .iter()
        .find(|entry| field(entry, "OUTPUT").is_some_and(|o| o.starts_with(&output)))
        .unwrap_or_else(|| panic!("no failure entry for {output}: {failures:?}"));
    assert_eq!(field(failure, "ATTEMPT"), Some("1"));
    assert_eq!(field(failure, "PRIORITY"), Some("4"));
    assert!(field(failure, "CAUSE").is_some(), "{failure:?}");
    assert!(field(failure, "DELAY_MS").is_some(), "{failure:?}");
    assert_eq!(field(failure, "DEVICE"), Some("test"));

    let attempts: Vec<&str> = with_message("connecting")
        .iter()
        .filter_map(|entry| field(entry, "ATTEMPT"))
        .collect();
    assert!(
        attempts.contains(&"1") && attempts.contains(&"2"),
        "{attempts:?}"
    );

    let raw = journal.received.lock().unwrap().clone();
    for (_, bytes) in raw {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&peer.token), "the token reached the journal");
        let signature = peer.token.rsplit('.').next().unwrap();
        assert!(
            !text.contains(signature),
            "the token's signature reached the journal"
        );
    }
    let stderr_text = stderr_text.lock().unwrap().clone();
    assert!(
        !stderr_text.contains("streaming"),
        "log lines went to standard error too: {stderr_text}"
    );
}
