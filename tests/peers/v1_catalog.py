"""Studios and sources that v1_standin.py lists, and their cursor pagination."""

import json

import es256
from v1_replies import invalid

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
PROTOCOLS = ("srt", "rtmp", "whip")

BUILT_IN_STUDIOS = [
    {"id": "std_morning", "name": "Morning show"},
    {"id": "std_news", "name": "Newsroom"},
]
BUILT_IN_SOURCES = [
    {"id": "src_cam1", "name": "Camera 1", "type": "srt", "studioId": "std_morning"},
    {"id": "src_cam2", "name": "Camera 2", "type": "srt", "studioId": "std_morning"},
    {"id": "src_desk", "name": "Desk feed", "type": "rtmp", "studioId": "std_news"},
    {"id": "src_talk", "name": "Talkback", "type": "whip", "studioId": "std_news"},
]
EXTRA_ITEM_FIELDS = {"createdAt": "2025-01-01T00:00:00Z", "labels": {"origin": "v1_standin"}}


def with_extra_fields(item: dict) -> dict:
    extra = {name: value for name, value in EXTRA_ITEM_FIELDS.items() if name not in item}
    return {**item, **extra}


def encode_cursor(kind: str, filter_value: str, offset: int) -> str:
    return es256.b64url_encode(es256.compact_json({"k": kind, "f": filter_value, "o": offset}))


def decode_cursor(text: str, kind: str, filter_value: str, length: int) -> int:
    """Return the offset in a cursor made by encode_cursor for this list."""
    try:
        fields = json.loads(es256.b64url_decode(text))
    except ValueError:
        raise invalid("cursor is not one this API returned; pass nextCursor unchanged") from None
    if not isinstance(fields, dict) or fields.get("k") != kind:
        raise invalid(f"cursor does not belong to the {kind} list")
    if fields.get("f") != filter_value:
        raise invalid("cursor was made for another studioId filter; keep the filter while paging")
    offset = fields.get("o")
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= length:
        raise invalid("cursor is not one this API returned; pass nextCursor unchanged")
    return offset


def single_parameter(query: dict, name: str):
    values = query.get(name)
    if values is None:
        return None
    if len(values) != 1:
        raise invalid(f"query parameter {name} is given {len(values)} times; give it once")
    return values[0]


def parse_limit(text) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise invalid(f"limit {text!r} is not an integer from 1 to {MAX_LIMIT}")
    return min(int(text), MAX_LIMIT)


def page(items: list, kind: str, filter_value: str, query: dict, end_cursor: str) -> dict:
    """Cut one page out of items for ?limit= and ?cursor=."""
    limit = parse_limit(single_parameter(query, "limit"))
    cursor = single_parameter(query, "cursor")
    offset = 0 if cursor is None else decode_cursor(cursor, kind, filter_value, len(items))
    end = offset + limit
    result = {"object": "list", "data": [with_extra_fields(item) for item in items[offset:end]]}
    if end < len(items):
        result["nextCursor"] = encode_cursor(kind, filter_value, end)
    elif end_cursor == "null":
        result["nextCursor"] = None
    return result


def load_fixtures(path: str):
    with open(path, encoding="utf-8") as handle:
        fixtures = json.load(handle)
    if not isinstance(fixtures, dict):
        raise ValueError(f"{path}: top level is not a JSON object")
    lists = []
    for name in ("studios", "sources"):
        items = fixtures.get(name, [])
        if not isinstance(items, list):
            raise ValueError(f"{path}: {name} is not a list")
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise ValueError(f"{path}: {name}[{index}] has no string id")
        lists.append(items)
    return lists[0], lists[1]


def generate_sources(count: int):
    width = max(3, len(str(count)))
    sources = [
        {
            "id": f"src_gen_{number:0{width}d}",
            "name": f"Generated source {number}",
            "type": PROTOCOLS[(number - 1) % len(PROTOCOLS)],
            "studioId": "std_generated",
        }
        for number in range(1, count + 1)
    ]
    return {"id": "std_generated", "name": "Generated sources"}, sources
