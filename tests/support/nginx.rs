//! Runs nginx with Debian's RTMP module (libnginx-mod-rtmp) as the RTMP
//! ingest peer, and optionally nginx's stream module terminating TLS in
//! front of it for RTMPS. Every listener binds a free port on 127.0.0.1.
//!
//! The RTMP application `inputs` records each publish as FLV into the
//! record directory, and calls the /v1 stand-in's `POST /hooks/on_publish`
//! to decide whether to accept it. tests/peers/v1_standin.py documents that check and
//! what nginx does when it refuses.

use super::receiver::{peer_script, PYTHON};
use serde_json::Value;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const NGINX_BINARY: &str = "/usr/sbin/nginx";
const MODULE_DIRECTORIES: [&str; 2] = ["/usr/lib/nginx/modules", "/usr/share/nginx/modules"];
const RTMP_MODULE: &str = "ngx_rtmp_module.so";
const STREAM_MODULE: &str = "ngx_stream_module.so";
const APPLICATION: &str = "inputs";
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Another process may take a free port between our check and nginx's bind.
const START_ATTEMPTS: usize = 3;
/// Log fields in which nginx-rtmp prints tcUrl and query strings, which
/// carry tokens and stream keys.
const SECRET_LOG_FIELDS: [&str; 2] = ["tc_url='", "args='"];

/// The test PKI that `v1_standin.py --make-tls` writes (see
/// tests/peers/tls_files.py).
pub struct TlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub wrong_host_cert: PathBuf,
    pub wrong_host_key: PathBuf,
    pub other_ca: PathBuf,
}

impl TlsFiles {
    /// Writes a CA, a server certificate for 127.0.0.1 and localhost, and a
    /// wrong-host certificate into `directory`.
    pub fn write(directory: &Path) -> Self {
        let output = Command::new(PYTHON)
            .arg(peer_script("v1_standin.py"))
            .arg("--make-tls")
            .arg(directory)
            .output()
            .expect("cannot run /usr/bin/python3 tests/peers/v1_standin.py --make-tls");
        assert!(
            output.status.success(),
            "v1_standin.py --make-tls failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let event: Value = serde_json::from_slice(&output.stdout)
            .expect("v1_standin.py --make-tls prints one JSON line");
        let path = |role: &str| PathBuf::from(event[role].as_str().expect(role));
        Self {
            ca: path("ca"),
            server_cert: path("server_cert"),
            server_key: path("server_key"),
            wrong_host_cert: path("wrong_host_cert"),
            wrong_host_key: path("wrong_host_key"),
            other_ca: path("other_ca"),
        }
    }
}

/// Certificate chain and key that the RTMPS listener presents.
#[derive(Clone)]
pub struct RtmpsCertificate {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What goes into nginx.conf.
struct Settings<'a> {
    directory: &'a Path,
    hook_origin: &'a str,
    rtmp_port: u16,
    rtmps: Option<(u16, &'a RtmpsCertificate)>,
}

pub struct Nginx {
    child: Child,
    directory: tempfile::TempDir,
    rtmp_port: u16,
    rtmps_port: Option<u16>,
}

impl Nginx {
    /// Starts nginx with an RTMP listener whose on_publish check goes to
    /// `hook_origin` (the stand-in's `http://127.0.0.1:PORT`).
    pub fn start(hook_origin: &str) -> Self {
        Self::launch(hook_origin, None)
    }

    /// Like `start`, plus an RTMPS listener presenting `certificate` that
    /// forwards the decrypted stream to the RTMP listener.
    pub fn start_with_rtmps(hook_origin: &str, certificate: &RtmpsCertificate) -> Self {
        Self::launch(hook_origin, Some(certificate))
    }

    fn launch(hook_origin: &str, certificate: Option<&RtmpsCertificate>) -> Self {
        assert!(
            hook_origin.starts_with("http://127.0.0.1:"),
            "hook origin {hook_origin} is not http://127.0.0.1:PORT; nginx-rtmp \
             calls hooks over plain HTTP, so start the stand-in without TLS"
        );
        let modules = find_modules();
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let directory = tempfile::tempdir().unwrap();
            std::fs::create_dir(directory.path().join("recordings")).unwrap();
            let settings = Settings {
                directory: directory.path(),
                hook_origin,
                rtmp_port: free_tcp_port(),
                rtmps: certificate.map(|certificate| (free_tcp_port(), certificate)),
            };
            let config_path = directory.path().join("nginx.conf");
            std::fs::write(&config_path, config_text(&settings, &modules)).unwrap();
            let rtmp_port = settings.rtmp_port;
            let rtmps_port = settings.rtmps.map(|(port, _)| port);

            let child = spawn(directory.path(), &config_path);
            let mut nginx = Self {
                child,
                directory,
                rtmp_port,
                rtmps_port,
            };
            match nginx.wait_until_listening() {
                Ok(()) => return nginx,
                Err(failure) => failures.push(failure),
            }
        }
        panic!(
            "nginx did not start in {START_ATTEMPTS} attempts:\n{}",
            failures.join("\n---\n")
        );
    }

    /// Waits until every listener accepts connections. On failure returns
    /// the reason with nginx's error log.
    fn wait_until_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let ports: Vec<u16> = [Some(self.rtmp_port), self.rtmps_port]
            .into_iter()
            .flatten()
            .collect();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("nginx exited with {status}:\n{}", self.error_log()));
            }
            // nginx logs "bind() ... failed" at once and retries for 2.5 s,
            // while another process may accept connections on the port.
            let log = self.error_log();
            if log.contains("bind() to") {
                return Err(format!("nginx could not bind its ports:\n{log}"));
            }
            let listening = ports
                .iter()
                .all(|port| TcpStream::connect((Ipv4Addr::LOCALHOST, *port)).is_ok());
            if listening {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "nginx did not listen on 127.0.0.1 ports {ports:?} within {:?}:\n{log}",
                    START_TIMEOUT
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Returns nginx's process id (one process: the master runs off).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills nginx with SIGKILL, as a crash would, and waits for it. The
    /// recording it was writing stays as far as it got.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts nginx again after `kill`, with the same ports, configuration
    /// and record directory, and waits until it listens.
    pub fn restart(&mut self) {
        let config_path = self.directory.path().join("nginx.conf");
        self.child = spawn(self.directory.path(), &config_path);
        if let Err(failure) = self.wait_until_listening() {
            panic!("nginx did not start again: {failure}");
        }
    }

    pub fn rtmp_port(&self) -> u16 {
        self.rtmp_port
    }

    /// Returns the RTMPS port. Panics when nginx was started without RTMPS.
    pub fn rtmps_port(&self) -> u16 {
        self.rtmps_port
            .expect("nginx was started without RTMPS; use Nginx::start_with_rtmps")
    }

    /// Returns `rtmp://127.0.0.1:PORT/<path>`, e.g. for path `inputs/rtmp-<uuid>`.
    pub fn rtmp_url(&self, path: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{path}", self.rtmp_port)
    }

    /// Returns `rtmps://127.0.0.1:PORT/<path>`. Panics without RTMPS.
    pub fn rtmps_url(&self, path: &str) -> String {
        format!("rtmps://127.0.0.1:{}/{path}", self.rtmps_port())
    }

    /// Returns the directory into which `record all` writes
    /// `<stream name>-<unix time>.flv`.
    pub fn record_dir(&self) -> PathBuf {
        self.directory.path().join("recordings")
    }

    /// Lists the FLV files recorded so far, sorted by name.
    pub fn recordings(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.record_dir())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|extension| extension == "flv"))
            .collect();
        files.sort();
        files
    }

    /// Reads nginx's error log (level info) with tcUrl and query values
    /// redacted, for failure messages.
    pub fn error_log(&self) -> String {
        let text =
            std::fs::read_to_string(self.directory.path().join("error.log")).unwrap_or_default();
        redact_log(&text)
    }

    /// Reads the nginx.conf that this instance runs.
    pub fn config(&self) -> String {
        std::fs::read_to_string(self.directory.path().join("nginx.conf")).unwrap()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: kill on our own child's pid has no memory effects.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(directory: &Path, config_path: &Path) -> Child {
    Command::new(NGINX_BINARY)
        .arg("-p")
        .arg(directory)
        .arg("-c")
        .arg(config_path)
        .arg("-e")
        .arg(directory.join("error.log"))
        .args(["-g", "daemon off; master_process off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot run {NGINX_BINARY} ({error}); run scripts/install-deps.sh")
        })
}

/// Finds the RTMP and stream modules. Panics, naming the Debian package,
/// when nginx or a module is missing.
fn find_modules() -> [PathBuf; 2] {
    assert!(
        Path::new(NGINX_BINARY).exists(),
        "{NGINX_BINARY} not found; run scripts/install-deps.sh (Debian package nginx)"
    );
    let find = |file: &str, package: &str| {
        MODULE_DIRECTORIES
            .iter()
            .map(|directory| Path::new(directory).join(file))
            .find(|path| path.exists())
            .unwrap_or_else(|| {
                panic!(
                    "nginx module {file} not found in {MODULE_DIRECTORIES:?}; \
                     run scripts/install-deps.sh (Debian package {package})"
                )
            })
    };
    [
        find(RTMP_MODULE, "libnginx-mod-rtmp"),
        find(STREAM_MODULE, "libnginx-mod-stream"),
    ]
}

fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

fn config_text(settings: &Settings, modules: &[PathBuf; 2]) -> String {
    let directory = settings.directory.display();
    let hooks = format!("{}/hooks", settings.hook_origin);
    let mut text = String::new();
    for module in modules {
        writeln!(text, "load_module {};", module.display()).unwrap();
    }
    // The rtmp access log is off because it prints every publish query.
    write!(
        text,
        "pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 256; }}

rtmp {{
    access_log off;
    server {{
        listen 127.0.0.1:{rtmp_port};
        application {APPLICATION} {{
            live on;
            record all;
            record_path {directory}/recordings;
            record_unique on;
            on_publish {hooks}/on_publish;
            on_publish_done {hooks}/on_publish_done;
            on_record_done {hooks}/on_record_done;
        }}
    }}
}}
",
        rtmp_port = settings.rtmp_port,
    )
    .unwrap();
    if let Some((rtmps_port, certificate)) = settings.rtmps {
        write!(
            text,
            "
stream {{
    server {{
        listen 127.0.0.1:{rtmps_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        proxy_pass 127.0.0.1:{rtmp_port};
    }}
}}
",
            cert = certificate.cert.display(),
            key = certificate.key.display(),
            rtmp_port = settings.rtmp_port,
        )
        .unwrap();
    }
    text
}

/// Replaces the quoted values of `SECRET_LOG_FIELDS` with `<redacted>`.
pub fn redact_log(text: &str) -> String {
    let mut redacted = text.to_string();
    for field in SECRET_LOG_FIELDS {
        let mut output = String::with_capacity(redacted.len());
        let mut rest = redacted.as_str();
        while let Some(start) = rest.find(field) {
            let value_start = start + field.len();
            output.push_str(&rest[..value_start]);
            output.push_str("<redacted>");
            rest = &rest[value_start..];
            // A value cut by the end of a line loses its closing quote.
            let end = rest.find(['\'', '\n']).unwrap_or(rest.len());
            rest = &rest[end..];
        }
        output.push_str(rest);
        redacted = output;
    }
    redacted
}
