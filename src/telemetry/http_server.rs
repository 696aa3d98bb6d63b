//! A small HTTP/1.1 server for the status endpoints. Its limits keep any
//! client from costing the bridge more than a bounded amount of memory,
//! threads and time. It reads one request per connection, with a request
//! head of at most `MAX_HEAD_BYTES` sent within `CLIENT_TIMEOUT`, and the
//! client has `CLIENT_TIMEOUT` again to read the response. It serves at
//! most `MAX_CONNECTIONS` at once, and further ones wait in the listen
//! backlog. Each connection has its own thread, so a client that stops
//! reading holds up only itself.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Maximum size of a request head (request line and headers) in bytes.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Connections served at the same time.
const MAX_CONNECTIONS: usize = 32;

/// Time a client has to send its request head, and again to read the
/// response.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Request body bytes read and dropped before closing, so that the close
/// does not reset a connection whose response the client has not read.
const MAX_DRAIN_BYTES: usize = 64 * 1024;

/// Time spent reading and dropping those bytes, in total.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// One response, before it is written.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Extra headers, as (name, value).
    pub headers: Vec<(&'static str, &'static str)>,
}

impl Reply {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Self::new(status, "text/plain; charset=utf-8", format!("{body}\n"))
    }
}

/// Builds the reply to a request from its method and request target.
pub type Handler = dyn Fn(&str, &str) -> Reply + Send + Sync;

/// The running server. Dropping it stops accepting; connections already
/// accepted end within `CLIENT_TIMEOUT` for the head and each write.
pub struct HttpServer {
    stopping: Arc<AtomicBool>,
    slots: Arc<Slots>,
    wake: SocketAddr,
    accepting: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Starts accepting connections on `listener` and replies to each
    /// request with what `handler` returns.
    pub fn start(listener: TcpListener, handler: Arc<Handler>) -> std::io::Result<Self> {
        let wake = wake_address(listener.local_addr()?);
        let stopping = Arc::new(AtomicBool::new(false));
        let slots = Arc::new(Slots::default());
        let accepting = {
            let stopping = Arc::clone(&stopping);
            let slots = Arc::clone(&slots);
            std::thread::Builder::new()
                .name("status-http".into())
                .spawn(move || accept_loop(&listener, &handler, &slots, &stopping))?
        };
        Ok(Self {
            stopping,
            slots,
            wake,
            accepting: Some(accepting),
        })
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.slots.freed.notify_all();
        // A connection of our own wakes the blocking accept. Without it the
        // accept may never return, so the thread is left to end with the
        // process rather than hold up the stop.
        let woken = TcpStream::connect_timeout(&self.wake, Duration::from_secs(1)).is_ok();
        if let Some(thread) = self.accepting.take() {
            if woken {
                let _ = thread.join();
            }
        }
    }
}

/// Returns the address that reaches the listener from this machine, with
/// loopback in place of an unspecified address.
fn wake_address(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// The count of connections being served, and a signal when one ends.
#[derive(Default)]
struct Slots {
    busy: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    /// Waits until fewer than `MAX_CONNECTIONS` are served and takes a
    /// slot; `false` when the server stops first.
    fn take(&self, stopping: &AtomicBool) -> bool {
        let mut busy = self
            .busy
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        while *busy >= MAX_CONNECTIONS {
            if stopping.load(Ordering::SeqCst) {
                return false;
            }
            busy = self
                .freed
                .wait_timeout(busy, Duration::from_millis(200))
                .unwrap_or_else(|poison| poison.into_inner())
                .0;
        }
        *busy += 1;
        true
    }

    fn give_back(&self) {
        let mut busy = self
            .busy
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *busy = busy.saturating_sub(1);
        self.freed.notify_one();
    }
}

fn accept_loop(
    listener: &TcpListener,
    handler: &Arc<Handler>,
    slots: &Arc<Slots>,
    stopping: &AtomicBool,
) {
    loop {
        if !slots.take(stopping) {
            return;
        }
        let accepted = listener.accept();
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                slots.give_back();
                // Such as EMFILE: wait instead of spinning on the error.
                tracing::warn!(%error, "status server failed to accept a connection");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        let handler = Arc::clone(handler);
        let slot = Arc::clone(slots);
        let spawned = std::thread::Builder::new()
            .name("status-client".into())
            .spawn(move || {
                serve_connection(stream, &*handler);
                slot.give_back();
            });
        if let Err(error) = spawned {
            slots.give_back();
            tracing::warn!(%error, "status server failed to start a connection thread");
        }
    }
}

/// The reason a request head could not be read.
#[derive(Debug, PartialEq)]
enum HeadError {
    /// The head passed `MAX_HEAD_BYTES`.
    TooLarge,
    /// The client closed, timed out or failed before the head was complete.
    Incomplete,
}

fn serve_connection(mut stream: TcpStream, handler: &Handler) {
    let peer = stream.peer_addr().ok();
    let head = read_head(&mut stream, Instant::now() + CLIENT_TIMEOUT);
    if let Err(error) = &head {
        tracing::debug!(?peer, ?error, "status client sent no complete request head");
    }
    let (reply, head_only) = match head {
        Ok(head) => match parse_request_line(&head) {
            Some((method, target)) => (handler(method, target), method == "HEAD"),
            None => (
                Reply::text(400, "bad request: expected a line such as GET / HTTP/1.1"),
                false,
            ),
        },
        Err(HeadError::TooLarge) => (
            Reply::text(
                431,
                "request header fields too large: the status server reads at most 16 KiB",
            ),
            false,
        ),
        Err(HeadError::Incomplete) => return,
    };
    let mut writer = DeadlineWriter {
        stream: &mut stream,
        deadline: Instant::now() + CLIENT_TIMEOUT,
    };
    if let Err(error) = write_reply(&mut writer, &reply, head_only) {
        tracing::debug!(?peer, %error, "failed to send a status response");
        return;
    }
    close_gracefully(stream);
}

/// Reads up to the blank line that ends the request head and returns the
/// head without it. Whatever follows in the same read (a body) is dropped.
fn read_head(stream: &mut impl ReadWithTimeout, deadline: Instant) -> Result<String, HeadError> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Incomplete);
        }
        stream
            .set_timeout(left)
            .map_err(|_| HeadError::Incomplete)?;
        let read = match stream.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Incomplete),
            Ok(read) => read,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Incomplete),
        };
        // The blank line may straddle two reads.
        let search_from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..read]);
        if let Some(end) = head_end(&head[search_from..]) {
            head.truncate(search_from + end);
            return Ok(String::from_utf8_lossy(&head).into_owned());
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Returns where the blank line that ends a head starts in `bytes`.
fn head_end(bytes: &[u8]) -> Option<usize> {
    let crlf = bytes.windows(4).position(|window| window == b"\r\n\r\n");
    let lf = bytes.windows(2).position(|window| window == b"\n\n");
    match (crlf, lf) {
        (Some(crlf), Some(lf)) => Some(crlf.min(lf)),
        (found, None) | (None, found) => found,
    }
}

/// A stream whose reads can time out. It is a trait so that tests can
/// use a byte slice.
trait ReadWithTimeout: Read {
    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()>;
}

impl ReadWithTimeout for TcpStream {
    fn set_timeout(&mut self, timeout: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(timeout))
    }
}

/// Returns the method and request target of the head's first line, with
/// an absolute-form target (`http://host/path`) reduced to its path.
fn parse_request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let method = parts.next().filter(|method| !method.is_empty())?;
    let target = parts.next().filter(|target| !target.is_empty())?;
    let version = parts.next()?;
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return None;
    }
    Some((method, origin_form(target)))
}

fn origin_form(target: &str) -> &str {
    let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    else {
        return target;
    };
    match rest.find(['/', '?']) {
        Some(start) if rest[start..].starts_with('/') => &rest[start..],
        Some(_) | None => "/",
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Writes `reply` with `Connection: close`; `head_only` leaves the body out
/// but keeps its `Content-Length`, as HEAD requires.
fn write_reply(stream: &mut impl Write, reply: &Reply, head_only: bool) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(&reply.body)?;
    }
    stream.flush()
}

/// A stream whose writes all end by `deadline`, so that a client reading
/// slowly cannot hold its connection longer.
struct DeadlineWriter<'a> {
    stream: &'a mut TcpStream,
    deadline: Instant,
}

impl Write for DeadlineWriter<'_> {
    fn write(&mut self, buffer: &[u8]) -> std::io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                ErrorKind::TimedOut,
                "the client did not read the response in time",
            ));
        }
        self.stream.set_write_timeout(Some(left))?;
        self.stream.write(buffer)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stream.flush()
    }
}

/// Ends the response and reads what the client still sends (a request
/// body), a bounded amount for a bounded time, before closing.
fn close_gracefully(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    let mut drained = 0;
    let mut buffer = [0u8; 4096];
    while drained < MAX_DRAIN_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ReadWithTimeout for &[u8] {
        fn set_timeout(&mut self, _timeout: Duration) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn head_of(bytes: &[u8]) -> Result<String, HeadError> {
        let mut input = bytes;
        read_head(&mut input, Instant::now() + Duration::from_secs(5))
    }

    #[test]
    fn head_ends_at_blank_line() {
        let head = head_of(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody");
        assert_eq!(head, Ok("GET / HTTP/1.1\r\nHost: a".to_string()));
        let bare = head_of(b"GET / HTTP/1.0\nHost: a\n\n");
        assert_eq!(bare, Ok("GET / HTTP/1.0\nHost: a".to_string()));
    }

    #[test]
    fn head_over_limit_is_too_large() {
        let mut request = b"GET / HTTP/1.1\r\n".to_vec();
        request.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES));
        assert_eq!(head_of(&request), Err(HeadError::TooLarge));
    }

    #[test]
    fn head_cut_short_is_incomplete() {
        assert_eq!(head_of(b"GET / HTTP/1.1\r\n"), Err(HeadError::Incomplete));
    }

    #[test]
    fn request_line_forms() {
        let cases = [
            ("GET / HTTP/1.1", Some(("GET", "/"))),
            ("HEAD /metrics?x=1 HTTP/1.0", Some(("HEAD", "/metrics?x=1"))),
            (
                "GET http://127.0.0.1:8181/metrics HTTP/1.1",
                Some(("GET", "/metrics")),
            ),
            ("GET http://127.0.0.1:8181 HTTP/1.1", Some(("GET", "/"))),
            ("GET http://host?q HTTP/1.1", Some(("GET", "/"))),
            ("GET /", None),
            ("GET / HTTP/2.0", None),
            ("GET / HTTP/1.1 extra", None),
            ("", None),
            (" / HTTP/1.1", None),
        ];
        for (line, expected) in cases {
            assert_eq!(parse_request_line(line), expected, "{line:?}");
        }
    }

    #[test]
    fn head_request_keeps_length_drops_body() {
        let reply = Reply::text(200, "hello");
        let mut written = Vec::new();
        write_reply(&mut written, &reply, true).unwrap();
        let text = String::from_utf8(written).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 6\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }

    #[test]
    fn writer_past_deadline_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _peer = listener.accept().unwrap();
        let mut writer = DeadlineWriter {
            stream: &mut stream,
            deadline: Instant::now(),
        };
        let error = writer.write_all(b"late").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::TimedOut);
    }

    #[test]
    fn extra_headers_are_written() {
        let mut reply = Reply::text(405, "no");
        reply.headers.push(("Allow", "GET, HEAD"));
        let mut written = Vec::new();
        write_reply(&mut written, &reply, false).unwrap();
        let text = String::from_utf8(written).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("Allow: GET, HEAD\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nno\n"), "{text}");
    }
}
