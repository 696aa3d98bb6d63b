"""Misbehaviour state of v1_standin.py and the /_control body that changes it.

v1_standin.py's docstring documents the /_control fields and stats.
"""

import json
import threading
from collections import Counter, deque

import v1_openapi
from v1_hooks import PLACEMENTS
from v1_replies import FAIL_CODES, invalid

REQUEST_LOG_LENGTH = 1000


def control_int(section: dict, name: str, where: str, default=None, allowed=None, minimum=None):
    value = section.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(f"{where}.{name} {value!r} is not an integer")
    if allowed is not None and value not in allowed:
        raise invalid(f"{where}.{name} {value} is not one of {list(allowed)}")
    if minimum is not None and value < minimum:
        raise invalid(f"{where}.{name} {value} is below {minimum}")
    return value


def control_choice(section: dict, name: str, where: str, default: str, allowed):
    value = section.get(name, default)
    if value not in allowed:
        raise invalid(f"{where}.{name} {value!r} is not one of {list(allowed)}")
    return value


def control_operation(section: dict, where: str):
    value = section.get("operation")
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{where}.operation {value!r} is not a string")
    try:
        return v1_openapi.normalize_operation_key(value)
    except ValueError as error:
        raise invalid(f"{where}.operation {error}") from None


def control_section(body: dict, name: str, fields) -> dict:
    section = body[name]
    if not isinstance(section, dict):
        raise invalid(f"{name} is not a JSON object")
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise invalid(f"{name} has unknown fields {unknown}; known are {sorted(fields)}")
    return section


def parse_rate_limit(body: dict):
    where = "rate_limit"
    section = control_section(
        body, where, ("count", "retry_after_s", "retry_after_form", "operation")
    )
    count = control_int(section, "count", where, minimum=0)
    if count == 0:
        return None
    return {
        "remaining": count,
        "retry_after_s": control_int(section, "retry_after_s", where, default=1, minimum=0),
        "retry_after_form": control_choice(
            section, "retry_after_form", where, "seconds", ("seconds", "http-date", "none")
        ),
        "operation": control_operation(section, where),
    }


def parse_fail(body: dict):
    where = "fail"
    section = control_section(body, where, ("count", "status", "body", "operation"))
    count = control_int(section, "count", where, minimum=0)
    if count == 0:
        return None
    return {
        "remaining": count,
        "status": control_int(section, "status", where, default=503, allowed=FAIL_CODES),
        "body": control_choice(section, "body", where, "envelope", ("envelope", "html", "empty")),
        "operation": control_operation(section, where),
    }


def parse_slow(body: dict):
    where = "slow"
    section = control_section(body, where, ("delay_s", "count", "operation"))
    delay_s = section.get("delay_s")
    if not isinstance(delay_s, (int, float)) or isinstance(delay_s, bool) or delay_s < 0:
        raise invalid(f"slow.delay_s {delay_s!r} is not a number of seconds >= 0")
    count = section.get("count")
    if count is not None:
        count = control_int(section, "count", where, minimum=0)
    if delay_s == 0 or count == 0:
        return None
    return {
        "delay_s": float(delay_s),
        "remaining": count,
        "operation": control_operation(section, where),
    }


def parse_source_ids(value, where: str) -> list:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid(f"{where} is not a list of source ids")
    return list(value)


CONTROL_FIELDS = (
    "reset",
    "reset_stats",
    "rate_limit",
    "fail",
    "slow",
    "write_disabled",
    "token_ttl_s",
    "end_cursor",
    "stream_key_sources",
    "rotate_signing_key",
    "drop_old_keys",
    "rtmp_placement",
)


def parse_control(body) -> dict:
    """Validate a /_control body and return the changes it requests."""
    if not isinstance(body, dict):
        raise invalid("control body is not a JSON object")
    unknown = sorted(set(body) - set(CONTROL_FIELDS))
    if unknown:
        raise invalid(f"unknown control fields {unknown}; known are {list(CONTROL_FIELDS)}")
    changes = {}
    for flag in ("reset", "reset_stats", "write_disabled", "rotate_signing_key", "drop_old_keys"):
        if flag in body:
            if not isinstance(body[flag], bool):
                raise invalid(f"{flag} {body[flag]!r} is not true or false")
            changes[flag] = body[flag]
    parsers = {"rate_limit": parse_rate_limit, "fail": parse_fail, "slow": parse_slow}
    for name, parser in parsers.items():
        if name in body:
            changes[name] = None if body[name] is None else parser(body)
    if "token_ttl_s" in body:
        changes["token_ttl_s"] = control_int(body, "token_ttl_s", "control")
    if "end_cursor" in body:
        changes["end_cursor"] = control_choice(
            body, "end_cursor", "control", "null", ("null", "absent")
        )
    if "stream_key_sources" in body:
        changes["stream_key_sources"] = parse_source_ids(
            body["stream_key_sources"], "stream_key_sources"
        )
    if "rtmp_placement" in body:
        changes["rtmp_placement"] = control_choice(
            body, "rtmp_placement", "control", "any", PLACEMENTS
        )
    return changes


class Faults:
    """Misbehaviour and runtime settings, changed by flags and /_control."""

    def __init__(
        self, token_ttl_s: int, end_cursor: str, stream_key_sources: list, rtmp_placement: str
    ):
        self.lock = threading.Lock()
        self.start_settings = {
            "token_ttl_s": token_ttl_s,
            "end_cursor": end_cursor,
            "stream_key_sources": list(stream_key_sources),
            "rtmp_placement": rtmp_placement,
        }
        self.state = {}
        self.reset()

    def reset(self):
        self.state.update(rate_limit=None, fail=None, slow=None, write_disabled=False)
        self.state.update(json.loads(json.dumps(self.start_settings)))

    def apply(self, changes: dict):
        with self.lock:
            if changes.get("reset"):
                self.reset()
            for name in (
                "rate_limit",
                "fail",
                "slow",
                "write_disabled",
                "token_ttl_s",
                "end_cursor",
                "stream_key_sources",
                "rtmp_placement",
            ):
                if name in changes:
                    self.state[name] = changes[name]

    def snapshot(self) -> dict:
        with self.lock:
            return json.loads(json.dumps(self.state))

    def setting(self, name: str):
        with self.lock:
            return self.state[name]

    @staticmethod
    def matches(entry, operation: str) -> bool:
        return entry is not None and entry["operation"] in (None, operation)

    def take(self, operation: str):
        """Consume the misbehaviour due for one /v1 request.

        Returns (delay_s, injected) where injected is None, ("fail", entry) or
        ("rate_limit", entry), each entry a copy of the armed state.
        """
        with self.lock:
            delay_s = 0.0
            slow = self.state["slow"]
            if self.matches(slow, operation):
                delay_s = slow["delay_s"]
                if slow["remaining"] is not None:
                    slow["remaining"] -= 1
                    if slow["remaining"] == 0:
                        self.state["slow"] = None
            for name in ("fail", "rate_limit"):
                entry = self.state[name]
                if self.matches(entry, operation):
                    entry["remaining"] -= 1
                    if entry["remaining"] == 0:
                        self.state[name] = None
                    return delay_s, (name, dict(entry))
            return delay_s, None


class Stats:
    """Request and hook counters for GET /_control/stats."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.total = 0
        self.paths = Counter()
        self.operations = Counter()
        self.statuses = Counter()
        self.log = deque(maxlen=REQUEST_LOG_LENGTH)
        self.hook_calls = Counter()
        self.hook_verdicts = Counter()
        self.hook_log = deque(maxlen=REQUEST_LOG_LENGTH)

    def count_arrival(self, method: str, path: str, operation):
        with self.lock:
            self.total += 1
            self.paths[f"{method} {path}"] += 1
            self.operations[operation or f"{method} {path}"] += 1

    def record(self, entry: dict):
        with self.lock:
            self.statuses[str(entry["status"])] += 1
            self.log.append(entry)

    def record_hook(self, event: dict):
        with self.lock:
            self.hook_calls[event["call"]] += 1
            if "accepted" in event:
                self.hook_verdicts["accepted" if event["accepted"] else "refused"] += 1
            self.hook_log.append(event)

    def clear(self):
        with self.lock:
            self.reset()

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "total": self.total,
                "paths": dict(self.paths),
                "operations": dict(self.operations),
                "statuses": dict(self.statuses),
                "requests": list(self.log),
                "hooks": {
                    "calls": dict(self.hook_calls),
                    "accepted": self.hook_verdicts["accepted"],
                    "refused": self.hook_verdicts["refused"],
                    "events": list(self.hook_log),
                },
            }
