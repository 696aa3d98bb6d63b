//! A safe SRT caller socket over libsrt's C API: live mode, one message per
//! send, connect errors sorted into rejected, timed out and other, and a
//! bounded drain of the send buffer before closing.
//!
//! libsrt's own log lines go through `tracing` (target `libsrt`, at debug)
//! with every live streamid and passphrase replaced by `<redacted>`, and
//! libsrt logs only errors, so its messages never carry a credential.

use super::ffi;
use crate::config::Secret;
use crate::telemetry::status::SrtLinkStats;
use libc::{c_char, c_int, c_void};
use std::ffi::CStr;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// MPEG-TS packets per SRT message: 7 x 188 = 1316 bytes, libsrt's live
/// default payload size.
pub const PAYLOAD_BYTES: usize = 1316;

/// How long one send may block before the connection counts as stalled.
const SEND_TIMEOUT_MS: c_int = 5000;

/// How often the drain looks at the send buffer.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Time on top of the latency for the last packet to cross the network and
/// be read by the receiving application before the connection closes.
const DELIVERY_MARGIN: Duration = Duration::from_millis(200);

/// Options for one caller connection.
pub struct CallerOptions<'a> {
    pub streamid: &'a Secret,
    pub latency_ms: u32,
    pub passphrase: Option<&'a Secret>,
    /// 0 lets libsrt choose (AES-128), or 16, 24 or 32.
    pub pbkeylen: u32,
    pub connect_timeout_ms: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot resolve SRT host '{host}': {reason}: check the host name")]
    Resolve { host: String, reason: String },

    #[error("{peer} rejected the connection (SRT reject reason {code}: {reason})")]
    Rejected {
        peer: String,
        code: i32,
        reason: String,
    },

    #[error(
        "no SRT listener answered at {peer} within {timeout_ms} ms: check the host, port and \
         firewall"
    )]
    TimedOut { peer: String, timeout_ms: u32 },

    #[error("libsrt refused SRT option {option}: {reason}")]
    Option {
        option: &'static str,
        reason: String,
    },

    #[error("SRT connection to {peer} failed: {reason}")]
    Failed { peer: String, reason: String },
}

#[derive(Debug, thiserror::Error)]
#[error("SRT send to {peer} failed: {reason} (libsrt error {code})")]
pub struct SendError {
    pub peer: String,
    pub code: i32,
    pub reason: String,
}

/// Outcome of a drain: how long it waited and what stayed unacknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainReport {
    pub waited: Duration,
    /// Packets still unacknowledged when the drain ended.
    pub unsent_packets: usize,
    pub unsent_bytes: usize,
    /// Whether the send buffer emptied and the receiver's latency window
    /// passed within the limit.
    pub complete: bool,
    /// Whether the connection broke during the drain.
    pub connection_lost: bool,
}

/// A connected SRT caller socket; closed on drop.
pub struct SrtSocket {
    handle: ffi::SRTSOCKET,
    peer: String,
    latency: Duration,
    last_send: Option<Instant>,
    _redaction: Redaction,
}

impl SrtSocket {
    /// Resolves `host` (names, IPv4 and IPv6 literals) and connects to the
    /// first address whose listener responds. A rejection ends the attempt
    /// at once, and a timeout moves on to the next address.
    pub fn connect(host: &str, port: u16, options: &CallerOptions) -> Result<Self, ConnectError> {
        startup();
        let peer = peer_label(host, port);
        let addresses = resolve(host, port)?;

        let redaction = Redaction::new(options);
        let mut last_error = None;
        for address in addresses {
            match connect_address(&address, &peer, options) {
                Ok(handle) => {
                    return Ok(Self {
                        handle,
                        peer,
                        latency: Duration::from_millis(options.latency_ms.into()),
                        last_send: None,
                        _redaction: redaction,
                    })
                }
                Err(error @ ConnectError::TimedOut { .. }) => {
                    tracing::debug!(%address, "SRT connect timed out; trying the next address");
                    last_error = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| ConnectError::Resolve {
            host: host.to_string(),
            reason: "no addresses".to_string(),
        }))
    }

    /// Sends one SRT message, which must fit in one packet.
    pub fn send_message(&mut self, message: &[u8]) -> Result<(), SendError> {
        debug_assert!(message.len() <= PAYLOAD_BYTES);
        // SAFETY: the buffer is valid for its length, and a null `mctrl`
        // selects the default message control.
        let sent = unsafe {
            ffi::srt_sendmsg2(
                self.handle,
                message.as_ptr().cast::<c_char>(),
                message.len() as c_int,
                std::ptr::null_mut(),
            )
        };
        if sent == ffi::SRT_ERROR {
            let (code, reason) = last_error();
            return Err(SendError {
                peer: self.peer.clone(),
                code,
                reason,
            });
        }
        self.last_send = Some(Instant::now());
        Ok(())
    }

    /// Returns whether libsrt still reports the connection as established.
    pub fn is_connected(&self) -> bool {
        // SAFETY: libsrt accepts any socket id here, closed ones included.
        unsafe { ffi::srt_getsockstate(self.handle) == ffi::SRTS_CONNECTED }
    }

    /// Reads libsrt's RTT, loss and retransmission counters for this
    /// connection, or `None` when libsrt reports none (the connection is
    /// gone).
    pub fn link_stats(&self) -> Option<SrtLinkStats> {
        let mut stats = ffi::SRT_TRACEBSTATS::default();
        // SAFETY: `stats` is a whole SRT_TRACEBSTATS for libsrt to fill, and
        // `clear` 0 leaves the counters as they are.
        let result = unsafe { ffi::srt_bstats(self.handle, &mut stats, 0) };
        if result == ffi::SRT_ERROR {
            return None;
        }
        Some(SrtLinkStats {
            rtt_ms: stats.msRTT,
            lost: u64::try_from(stats.pktSndLossTotal).unwrap_or(0),
            retransmitted: u64::try_from(stats.pktRetransTotal).unwrap_or(0),
        })
    }

    /// Packets and bytes sent but not yet acknowledged by the receiver, or
    /// `None` once the connection is gone.
    pub fn unacknowledged(&self) -> Option<(usize, usize)> {
        let (mut packets, mut bytes) = (0usize, 0usize);
        // SAFETY: both out-pointers are valid for the call.
        let result = unsafe { ffi::srt_getsndbuffer(self.handle, &mut packets, &mut bytes) };
        (result != ffi::SRT_ERROR && self.is_connected()).then_some((packets, bytes))
    }

    /// Waits, up to `limit`, until the receiver has acknowledged every packet
    /// and the last one has had the receiver's latency (plus a margin) to be
    /// delivered. A receiver whose connection closes drops the packets it
    /// still keeps back for its latency window, so an empty send buffer
    /// alone is not enough. On loopback (tests/srt_output.rs), closing right
    /// after the buffer emptied lost about the last latency's worth of data.
    pub fn drain(&self, limit: Duration) -> DrainReport {
        let started = Instant::now();
        let delivered_at = self
            .last_send
            .map(|sent| sent + self.latency + DELIVERY_MARGIN);
        loop {
            let waited = started.elapsed();
            let Some((packets, bytes)) = self.unacknowledged() else {
                return DrainReport {
                    waited,
                    unsent_packets: 0,
                    unsent_bytes: 0,
                    complete: false,
                    connection_lost: true,
                };
            };
            let delivered = delivered_at.is_none_or(|at| Instant::now() >= at);
            if packets == 0 && delivered {
                return DrainReport {
                    waited,
                    unsent_packets: 0,
                    unsent_bytes: 0,
                    complete: true,
                    connection_lost: false,
                };
            }
            if waited >= limit {
                return DrainReport {
                    waited,
                    unsent_packets: packets,
                    unsent_bytes: bytes,
                    complete: false,
                    connection_lost: false,
                };
            }
            std::thread::sleep(DRAIN_POLL_INTERVAL);
        }
    }

    pub fn peer(&self) -> &str {
        &self.peer
    }
}

impl Drop for SrtSocket {
    fn drop(&mut self) {
        // SAFETY: the handle came from srt_create_socket and is closed once.
        unsafe {
            ffi::srt_close(self.handle);
        }
    }
}

/// `host:port`, with brackets around an IPv6 literal.
pub fn peer_label(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// NOTE: name lookup goes through getaddrinfo without a timeout, so a hanging
// resolver holds the session thread until the system resolver gives up.
fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let resolve_error = |reason: String| ConnectError::Resolve {
        host: host.to_string(),
        reason,
    };
    let addresses: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|error| resolve_error(error.to_string()))?
        .collect();
    if addresses.is_empty() {
        return Err(resolve_error("no addresses".to_string()));
    }
    Ok(addresses)
}

fn connect_address(
    address: &SocketAddr,
    peer: &str,
    options: &CallerOptions,
) -> Result<ffi::SRTSOCKET, ConnectError> {
    // SAFETY: srt_create_socket has no preconditions after srt_startup.
    let handle = unsafe { ffi::srt_create_socket() };
    if handle == ffi::SRT_INVALID_SOCK {
        return Err(ConnectError::Failed {
            peer: peer.to_string(),
            reason: last_error().1,
        });
    }
    let result = configure(handle, options).and_then(|()| dial(handle, address, peer, options));
    if result.is_err() {
        // SAFETY: the handle is valid and not used after this.
        unsafe {
            ffi::srt_close(handle);
        }
    }
    result.map(|()| handle)
}

fn configure(handle: ffi::SRTSOCKET, options: &CallerOptions) -> Result<(), ConnectError> {
    // TRANSTYPE comes first because it resets the options it governs.
    set_int(
        handle,
        ffi::SRTO_TRANSTYPE,
        "SRTO_TRANSTYPE",
        ffi::SRTT_LIVE,
    )?;
    set_int(
        handle,
        ffi::SRTO_PAYLOADSIZE,
        "SRTO_PAYLOADSIZE",
        PAYLOAD_BYTES as c_int,
    )?;
    set_int(handle, ffi::SRTO_SNDSYN, "SRTO_SNDSYN", 1)?;
    set_int(handle, ffi::SRTO_RCVSYN, "SRTO_RCVSYN", 1)?;
    set_int(handle, ffi::SRTO_SNDTIMEO, "SRTO_SNDTIMEO", SEND_TIMEOUT_MS)?;
    set_int(
        handle,
        ffi::SRTO_LATENCY,
        "SRTO_LATENCY",
        clamp(options.latency_ms),
    )?;
    set_int(
        handle,
        ffi::SRTO_CONNTIMEO,
        "SRTO_CONNTIMEO",
        clamp(options.connect_timeout_ms),
    )?;
    set_bytes(
        handle,
        ffi::SRTO_STREAMID,
        "SRTO_STREAMID",
        options.streamid.expose().as_bytes(),
    )?;
    if let Some(passphrase) = options.passphrase {
        set_bytes(
            handle,
            ffi::SRTO_PASSPHRASE,
            "SRTO_PASSPHRASE",
            passphrase.expose().as_bytes(),
        )?;
        if options.pbkeylen != 0 {
            set_int(
                handle,
                ffi::SRTO_PBKEYLEN,
                "SRTO_PBKEYLEN",
                clamp(options.pbkeylen),
            )?;
        }
    }
    Ok(())
}

fn dial(
    handle: ffi::SRTSOCKET,
    address: &SocketAddr,
    peer: &str,
    options: &CallerOptions,
) -> Result<(), ConnectError> {
    let (storage, length) = socket_address(address);
    // SAFETY: `storage` holds a sockaddr_in or sockaddr_in6 of `length` bytes.
    let result = unsafe {
        ffi::srt_connect(
            handle,
            std::ptr::from_ref(&storage).cast::<libc::sockaddr>(),
            length,
        )
    };
    if result != ffi::SRT_ERROR {
        return Ok(());
    }

    let (code, text) = last_error();
    // SAFETY: the handle is valid until the caller closes it.
    let reason = unsafe { ffi::srt_getrejectreason(handle) };
    Err(classify(
        code,
        text,
        reason,
        peer,
        options.connect_timeout_ms,
    ))
}

/// Sorts a failed connect by libsrt's error code and reject reason.
fn classify(code: c_int, text: String, reason: c_int, peer: &str, timeout_ms: u32) -> ConnectError {
    let no_answer = matches!(
        reason,
        ffi::SRT_REJ_UNKNOWN | ffi::SRT_REJ_SYSTEM | ffi::SRT_REJ_TIMEOUT
    );
    if code == ffi::SRT_ENOSERVER || reason == ffi::SRT_REJ_TIMEOUT {
        return ConnectError::TimedOut {
            peer: peer.to_string(),
            timeout_ms,
        };
    }
    if code == ffi::SRT_ECONNREJ && !no_answer {
        return ConnectError::Rejected {
            peer: peer.to_string(),
            code: reason,
            reason: reject_reason_text(reason),
        };
    }
    ConnectError::Failed {
        peer: peer.to_string(),
        reason: format!("{text} (libsrt error {code}, reject reason {reason})"),
    }
}

fn reject_reason_text(reason: c_int) -> String {
    // SAFETY: libsrt returns a static string for any value.
    let text = unsafe { c_string(ffi::srt_rejectreason_str(reason)) };
    text.unwrap_or_else(|| "no description".to_string())
}

fn set_int(
    handle: ffi::SRTSOCKET,
    option: c_int,
    name: &'static str,
    value: c_int,
) -> Result<(), ConnectError> {
    let bytes = value.to_ne_bytes();
    set_bytes(handle, option, name, &bytes)
}

fn set_bytes(
    handle: ffi::SRTSOCKET,
    option: c_int,
    name: &'static str,
    value: &[u8],
) -> Result<(), ConnectError> {
    // SAFETY: libsrt copies `value`, which is valid for its length.
    let result = unsafe {
        ffi::srt_setsockflag(
            handle,
            option,
            value.as_ptr().cast::<c_void>(),
            value.len() as c_int,
        )
    };
    if result == ffi::SRT_ERROR {
        return Err(ConnectError::Option {
            option: name,
            reason: last_error().1,
        });
    }
    Ok(())
}

fn clamp(value: u32) -> c_int {
    c_int::try_from(value).unwrap_or(c_int::MAX)
}

fn socket_address(address: &SocketAddr) -> (libc::sockaddr_storage, c_int) {
    // SAFETY: an all-zero sockaddr_storage is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let length = match address {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let raw = unsafe { &mut *std::ptr::from_mut(&mut storage).cast::<libc::sockaddr_in>() };
            raw.sin_family = libc::AF_INET as libc::sa_family_t;
            raw.sin_port = v4.port().to_be();
            raw.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let raw =
                unsafe { &mut *std::ptr::from_mut(&mut storage).cast::<libc::sockaddr_in6>() };
            raw.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            raw.sin6_port = v6.port().to_be();
            raw.sin6_flowinfo = v6.flowinfo();
            raw.sin6_addr.s6_addr = v6.ip().octets();
            raw.sin6_scope_id = v6.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, length as c_int)
}

/// libsrt's last error on this thread: its code and text.
fn last_error() -> (c_int, String) {
    // SAFETY: both calls read libsrt's thread-local error state.
    unsafe {
        let code = ffi::srt_getlasterror(std::ptr::null_mut());
        let text = c_string(ffi::srt_getlasterror_str()).unwrap_or_default();
        (code, text)
    }
}

/// Copies a C string; `None` for a null pointer.
///
/// # Safety
/// `pointer` must be null or point to a NUL-terminated string.
unsafe fn c_string(pointer: *const c_char) -> Option<String> {
    (!pointer.is_null()).then(|| CStr::from_ptr(pointer).to_string_lossy().into_owned())
}

/// Strings that libsrt's log lines must never show.
static REDACTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Registers a socket's streamid and passphrase for redaction while the
/// socket lives.
struct Redaction {
    secrets: Vec<String>,
}

impl Redaction {
    fn new(options: &CallerOptions) -> Self {
        let mut secrets = vec![options.streamid.expose().to_string()];
        secrets.extend(options.passphrase.map(|p| p.expose().to_string()));
        secrets.retain(|secret| !secret.is_empty());
        lock_redacted().extend(secrets.iter().cloned());
        Self { secrets }
    }
}

impl Drop for Redaction {
    fn drop(&mut self) {
        let mut registered = lock_redacted();
        for secret in &self.secrets {
            if let Some(index) = registered.iter().position(|entry| entry == secret) {
                registered.swap_remove(index);
            }
        }
    }
}

fn lock_redacted() -> std::sync::MutexGuard<'static, Vec<String>> {
    REDACTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Replaces every registered secret in `message`.
fn redact(message: &str) -> String {
    let mut redacted = message.to_string();
    for secret in lock_redacted().iter() {
        redacted = redacted.replace(secret.as_str(), "<redacted>");
    }
    redacted
}

/// Initializes libsrt once per process and routes its logging.
fn startup() {
    static STARTUP: Once = Once::new();
    STARTUP.call_once(|| {
        // SAFETY: called once, before any other libsrt call of this crate.
        unsafe {
            ffi::srt_setloglevel(ffi::LOG_ERR);
            ffi::srt_setloghandler(std::ptr::null_mut(), Some(forward_log));
            if ffi::srt_startup() < 0 {
                tracing::error!("srt_startup failed: {}", last_error().1);
            }
        }
    });
}

/// libsrt's log handler: hands each line to `tracing` after redaction.
unsafe extern "C" fn forward_log(
    _opaque: *mut c_void,
    level: c_int,
    _file: *const c_char,
    _line: c_int,
    area: *const c_char,
    message: *const c_char,
) {
    // A panic must not unwind into C.
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: libsrt passes NUL-terminated strings or null.
        let (area, message) = unsafe { (c_string(area), c_string(message)) };
        let message = redact(message.unwrap_or_default().trim_end());
        let area = area.unwrap_or_default();
        let level_name = match level {
            ..=ffi::LOG_ERR => "error",
            ffi::LOG_WARNING => "warning",
            ffi::LOG_NOTICE => "note",
            _ => "debug",
        };
        tracing::debug!(target: "libsrt", level = level_name, area, "{message}");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_sorts_connect_failures() {
        let timeout = classify(
            ffi::SRT_ENOSERVER,
            "t".into(),
            ffi::SRT_REJ_TIMEOUT,
            "h:1",
            900,
        );
        assert!(matches!(
            timeout,
            ConnectError::TimedOut {
                timeout_ms: 900,
                ..
            }
        ));

        for code in [2, 10, 11, 1002, 1403, 2001] {
            let error = classify(ffi::SRT_ECONNREJ, "r".into(), code, "h:1", 900);
            match error {
                ConnectError::Rejected { code: kept, .. } => assert_eq!(kept, code),
                other => panic!("reason {code} gave {other:?}"),
            }
        }

        let system = classify(
            ffi::SRT_ECONNREJ,
            "s".into(),
            ffi::SRT_REJ_SYSTEM,
            "h:1",
            900,
        );
        assert!(matches!(system, ConnectError::Failed { .. }));
        let other = classify(5003, "x".into(), ffi::SRT_REJ_UNKNOWN, "h:1", 900);
        assert!(matches!(other, ConnectError::Failed { .. }));
    }

    #[test]
    fn rejected_message_keeps_code_and_text() {
        startup();
        let error = classify(ffi::SRT_ECONNREJ, "r".into(), 10, "edge:9000", 900);
        assert_eq!(
            error.to_string(),
            format!(
                "edge:9000 rejected the connection (SRT reject reason 10: {})",
                reject_reason_text(10)
            )
        );
        assert!(!reject_reason_text(10).is_empty());
    }

    #[test]
    fn peer_label_brackets_ipv6() {
        assert_eq!(peer_label("::1", 9000), "[::1]:9000");
        assert_eq!(peer_label("[::1]", 9000), "[::1]:9000");
        assert_eq!(peer_label("edge.example", 9000), "edge.example:9000");
    }

    #[test]
    fn resolve_handles_both_families() {
        let v4 = resolve("127.0.0.1", 9000).unwrap();
        assert_eq!(v4, vec!["127.0.0.1:9000".parse().unwrap()]);
        let v6 = resolve("[::1]", 9000).unwrap();
        assert_eq!(v6, vec!["[::1]:9000".parse().unwrap()]);
        assert!(!resolve("localhost", 9000).unwrap().is_empty());
    }

    #[test]
    fn redact_replaces_registered_secrets() {
        let streamid = Secret::new("SRT streamid", "publish:live:trax:abc.def.ghi");
        let passphrase = Secret::new("SRT passphrase", "0123456789ab");
        let options = CallerOptions {
            streamid: &streamid,
            latency_ms: 120,
            passphrase: Some(&passphrase),
            pbkeylen: 0,
            connect_timeout_ms: 1000,
        };
        let guard = Redaction::new(&options);
        let line = "sid=publish:live:trax:abc.def.ghi pass=0123456789ab";
        assert_eq!(redact(line), "sid=<redacted> pass=<redacted>");
        drop(guard);
        assert_eq!(redact(line), line);
    }
}
