"""Minimal HTTP/1.1 server side on asyncio streams, for whip_receiver.py.

Bodies need a Content-Length (a chunked body is 411) of at most
MAX_BODY_BYTES (413). Connections stay open between requests unless the
client sends "Connection: close" or speaks HTTP/1.0.
"""

import asyncio
from dataclasses import dataclass, field

MAX_BODY_BYTES = 256 * 1024
MAX_HEADER_LINES = 100
IDLE_TIMEOUT_S = 30
REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
}


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: dict
    body: bytes = b""

    def header(self, name: str):
        return self.headers.get(name.lower())


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict = field(default_factory=dict)

    @classmethod
    def text(cls, status: int, message: str, **headers):
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        return cls(status, (message + "\n").encode("utf-8"), headers)


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.response = Response.text(status, message)


async def read_request(reader: asyncio.StreamReader):
    """Return the next request, or None when the client closed the connection."""
    line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT_S)
    if not line:
        return None
    parts = line.decode("latin-1").rstrip("\r\n").split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "invalid request line")
    headers = {}
    for _ in range(MAX_HEADER_LINES):
        header_line = (await reader.readline()).decode("latin-1").rstrip("\r\n")
        if not header_line:
            break
        name, colon, value = header_line.partition(":")
        if not colon:
            raise HttpError(400, "invalid header line: no colon")
        headers[name.strip().lower()] = value.strip()
    else:
        raise HttpError(400, f"more than {MAX_HEADER_LINES} header lines")
    request = Request(parts[0], parts[1], parts[2], headers)
    if "chunked" in (request.header("transfer-encoding") or "").lower():
        raise HttpError(411, "chunked bodies are not supported; send Content-Length")
    length_text = request.header("content-length") or "0"
    if not length_text.isdigit():
        raise HttpError(400, "Content-Length is not a number")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise HttpError(413, f"body of {length} bytes is over {MAX_BODY_BYTES}")
    request.body = await reader.readexactly(length)
    return request


def keeps_alive(request: Request) -> bool:
    connection = (request.header("connection") or "").lower()
    if request.version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"


async def write_response(writer: asyncio.StreamWriter, response: Response, keep_alive: bool):
    reason = REASONS.get(response.status, "Unknown")
    headers = {**response.headers, "Content-Length": str(len(response.body))}
    if not keep_alive:
        headers["Connection"] = "close"
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
    await writer.drain()
