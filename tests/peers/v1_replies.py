"""Error and injected replies of v1_standin.py, in the /v1 error envelope."""

import email.utils
import json
import math
import time

FAIL_CODES = {500: "internal_error", 502: "bad_gateway", 503: "service_unavailable"}
FAIL_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class ApiError(Exception):
    """An error reply in the /v1 envelope."""

    def __init__(self, status: int, code: str, message: str, headers=None, close=False):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.close = close


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


class Reply:
    def __init__(self, status: int, payload=None, headers=None, raw=None, content_type=None):
        self.status = status
        if raw is not None:
            self.body = raw
            self.content_type = content_type
        else:
            self.body = json.dumps(payload).encode("utf-8")
            self.content_type = "application/json"
        self.headers = headers or {}


def error_payload(code: str, message: str, request_id: str) -> dict:
    return {"error": {"code": code, "message": message, "requestId": request_id}}


def fail_reply(entry: dict, request_id: str) -> Reply:
    status = entry["status"]
    if entry["body"] == "html":
        reason = FAIL_REASONS[status]
        html = f"<html><head><title>{status} {reason}</title></head>"
        html += f"<body><h1>{status} {reason}</h1></body></html>\n"
        return Reply(status, raw=html.encode("ascii"), content_type="text/html")
    if entry["body"] == "empty":
        return Reply(status, raw=b"", content_type="text/plain")
    message = f"injected failure ({entry['remaining']} more to come)"
    return Reply(status, error_payload(FAIL_CODES[status], message, request_id))


def rate_limit_reply(entry: dict, request_id: str) -> Reply:
    headers = {}
    if entry["retry_after_form"] == "seconds":
        headers["Retry-After"] = str(entry["retry_after_s"])
    elif entry["retry_after_form"] == "http-date":
        # HTTP dates have whole seconds, so round up to wait at least retry_after_s.
        moment = math.ceil(time.time()) + entry["retry_after_s"]
        headers["Retry-After"] = email.utils.formatdate(moment, usegmt=True)
    message = f"rate limit exceeded ({entry['remaining']} more to come)"
    return Reply(429, error_payload("rate_limited", message, request_id), headers)
