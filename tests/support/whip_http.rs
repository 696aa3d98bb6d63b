//! A minimal HTTP/1.1 server on `std::net` for the webrtcbin WHIP receiver:
//! one thread accepts, one thread per connection reads requests with a
//! Content-Length body and writes the handler's responses. Connections stay
//! open between requests unless the client sends `Connection: close`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const MAX_BODY_BYTES: usize = 256 * 1024;
const MAX_HEADER_LINES: usize = 100;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Request {
    pub method: String,
    pub target: String,
    /// Header names in lower case, with their values.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn keeps_alive(&self) -> bool {
        !self
            .header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// Builds a response with a one-line text body.
    pub fn text(status: u16, message: &str) -> Self {
        Self {
            status,
            headers: vec![(
                "Content-Type".to_string(),
                "text/plain; charset=utf-8".to_string(),
            )],
            body: format!("{message}\n").into_bytes(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// The server's listening socket and accept thread; dropping it stops
/// accepting. Connections already open end when their client closes them.
pub struct Server {
    pub address: SocketAddr,
    stopping: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on 127.0.0.1 on a free port and serves `handler`.
    pub fn start(handler: Handler) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let accept_stopping = stopping.clone();
        let accept_thread = std::thread::Builder::new()
            .name("whip-http-accept".to_string())
            .spawn(move || accept_loop(listener, handler, accept_stopping))?;
        Ok(Self {
            address,
            stopping,
            accept_thread: Some(accept_thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // A connection of our own wakes the blocking accept.
        let _ = TcpStream::connect(self.address);
        if let Some(thread) = self.accept_thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: TcpListener, handler: Handler, stopping: Arc<AtomicBool>) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let handler = handler.clone();
        let _ = std::thread::Builder::new()
            .name("whip-http-connection".to_string())
            .spawn(move || serve_connection(stream, handler));
    }
}

fn serve_connection(stream: TcpStream, handler: Handler) {
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let (response, keep_alive) = match read_request(&mut reader) {
            Ok(None) => return,
            Ok(Some(request)) => (handler(&request), request.keeps_alive()),
            Err(response) => (response, false),
        };
        if write_response(&mut writer, &response, keep_alive).is_err() || !keep_alive {
            return;
        }
    }
}

/// Reads one request; `Ok(None)` when the client closed the connection,
/// `Err` with the response for a request that cannot be served.
fn read_request(reader: &mut BufReader<TcpStream>) -> Result<Option<Request>, Response> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) | Err(_) => return Ok(None),
        Ok(_) => {}
    }
    let parts: Vec<&str> = line.trim_end().split(' ').collect();
    if parts.len() != 3 || !parts[2].starts_with("HTTP/1.") {
        return Err(Response::text(400, "invalid request line"));
    }

    let mut headers = Vec::new();
    loop {
        let mut header_line = String::new();
        if reader.read_line(&mut header_line).is_err() {
            return Ok(None);
        }
        let header_line = header_line.trim_end();
        if header_line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADER_LINES {
            return Err(Response::text(400, "more than 100 header lines"));
        }
        let Some((name, value)) = header_line.split_once(':') else {
            return Err(Response::text(400, "invalid header line: no colon"));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }

    let mut request = Request {
        method: parts[0].to_string(),
        target: parts[1].to_string(),
        headers,
        body: Vec::new(),
    };
    request.body = read_body(reader, &request)?;
    Ok(Some(request))
}

fn read_body(reader: &mut BufReader<TcpStream>, request: &Request) -> Result<Vec<u8>, Response> {
    if request
        .header("transfer-encoding")
        .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"))
    {
        return Err(Response::text(
            411,
            "chunked bodies are not supported; send Content-Length",
        ));
    }
    let length: usize = match request.header("content-length") {
        None => 0,
        Some(text) => text
            .parse()
            .map_err(|_| Response::text(400, "Content-Length is not a number"))?,
    };
    if length > MAX_BODY_BYTES {
        let message = format!("body of {length} bytes is over {MAX_BODY_BYTES}");
        return Err(Response::text(413, &message));
    }
    let mut body = vec![0; length];
    reader
        .read_exact(&mut body)
        .map_err(|_| Response::text(400, "body shorter than its Content-Length"))?;
    Ok(body)
}

fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    keep_alive: bool,
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason_phrase(response.status)
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(&response.body)?;
    stream.flush()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}
