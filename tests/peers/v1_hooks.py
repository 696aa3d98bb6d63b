"""nginx-rtmp's on_publish check, as v1_standin.py serves it at POST /hooks/on_publish.

v1_standin.py's docstring documents the contract, the refusal and the events.
The functions here are free of I/O: parse_form reads a hook body, and
check_publish decides one on_publish call from it.
"""

import time
import urllib.parse
from collections import namedtuple

import es256

PLACEMENTS = ("tcurl", "query", "both", "any")
# nginx-rtmp 1.2.2 reads tcUrl and the publish name (with its "?query") into
# 256-byte buffers (NGX_RTMP_MAX_URL, NGX_RTMP_MAX_NAME in ngx_rtmp_cmd_module.h)
# and keeps at most 255 bytes plus the terminating NUL.
NGINX_KEPT_BYTES = 255
MIN_PREFIX_CHARS = 100
TOKEN_USER = "trax"
AUDIENCE = "trax-mediamtx"
ACTION = "publish"

HookForm = namedtuple("HookForm", "fields args raw_args")
Credentials = namedtuple("Credentials", "placement user password cut")
Verdict = namedtuple("Verdict", "accepted reason checks found")


def parse_form(body: str) -> HookForm:
    """Split a hook body into nginx's own fields and the publish query's arguments.

    For call=publish, nginx-rtmp appends the publish query verbatim after
    "&type=...", so the pairs after the first "type" belong to the
    publisher. Other calls have no "type" and yield no args, and their
    fields keep the first value of each name.
    """
    pieces = body.split("&")
    names = [piece.split("=", 1)[0] for piece in pieces]
    if "type" in names:
        boundary = names.index("type") + 1
    else:
        boundary = len(pieces)
    raw_args = "&".join(pieces[boundary:])
    fields = {}
    for name, value in urllib.parse.parse_qsl("&".join(pieces), keep_blank_values=True):
        fields.setdefault(name, value)
    args = {}
    for name, value in urllib.parse.parse_qsl(raw_args, keep_blank_values=True):
        args.setdefault(name, value)
    return HookForm(fields, args, raw_args)


def was_cut(text: str) -> bool:
    """Tell whether nginx may have cut text: it then has exactly the bytes nginx keeps."""
    return len(text.encode("utf-8")) == NGINX_KEPT_BYTES


def credentials_from_tcurl(tcurl: str):
    """Return the userinfo of tcUrl as Credentials, or None when it has none.

    A token long enough to be cut usually takes "@host:port/app" with it,
    so a cut tcUrl without "@" is taken as userinfo up to its end.
    """
    scheme, separator, rest = tcurl.partition("://")
    if not separator:
        return None
    cut = was_cut(tcurl)
    authority = rest.split("/", 1)[0]
    if "@" in authority:
        userinfo = authority.rsplit("@", 1)[0]
    elif cut and "/" not in rest and ":" in rest:
        userinfo = rest
    else:
        return None
    user, has_password, password = userinfo.partition(":")
    return Credentials(
        "tcurl",
        urllib.parse.unquote(user),
        urllib.parse.unquote(password) if has_password else None,
        cut,
    )


def credentials_from_query(form: HookForm):
    if "user" not in form.args and "pass" not in form.args:
        return None
    name = form.fields.get("name", "")
    cut = was_cut(f"{name}?{form.raw_args}")
    return Credentials("query", form.args.get("user"), form.args.get("pass"), cut)


def audience_matches(audience) -> bool:
    if isinstance(audience, list):
        return AUDIENCE in audience
    return audience == AUDIENCE


def claims_problem(claims: dict, path: str, now: float):
    """Return why the claims do not allow publishing path, or None when they do."""
    if not audience_matches(claims.get("aud")):
        return f"token aud {claims.get('aud')!r} does not contain {AUDIENCE!r}"
    if claims.get("action") != ACTION:
        return f"token action {claims.get('action')!r} is not {ACTION!r}"
    if claims.get("path") != path:
        return f"token path {claims.get('path')!r} is not {path!r}"
    expiry = claims.get("exp")
    if not isinstance(expiry, (int, float)) or isinstance(expiry, bool):
        return "token has no numeric exp"
    if expiry <= now:
        return f"token expired {int(now - expiry)} s ago"
    return None


def token_problem(token: str, path: str, keys: dict, now: float):
    """Return why a whole token fails, or None when it verifies and allows path."""
    try:
        header, claims, parts = es256.split_token(token)
    except ValueError as error:
        return str(error)
    if header.get("alg") != "ES256":
        return f"token alg {header.get('alg')!r} is not 'ES256'"
    key = keys.get(header.get("kid"))
    if key is None:
        return f"token kid {header.get('kid')!r} is not in the JWKS"
    if not es256.verify(key, parts):
        return "token signature does not verify"
    return claims_problem(claims, path, now)


def check_token(password: str, cut: bool, path: str, context) -> tuple:
    """Return (check, problem) for a token, whole or cut by nginx.

    check is "full" or "prefix". A cut value passes when it is at least
    MIN_PREFIX_CHARS long and starts a token issued for path that still
    verifies and has not expired.
    """
    if not password:
        return "full", "pass is missing"
    problem = token_problem(password, path, context.keys, context.now)
    if problem is None or not cut:
        return "full", problem
    if len(password) < MIN_PREFIX_CHARS:
        return "prefix", (
            f"token cut to {len(password)} characters, fewer than {MIN_PREFIX_CHARS}"
        )
    issued = [token for token in context.issued_tokens(path) if token.startswith(password)]
    if not issued:
        return "prefix", f"cut token ({len(password)} characters) starts no token issued for {path}"
    problems = [token_problem(token, path, context.keys, context.now) for token in issued]
    if None in problems:
        return "prefix", None
    return "prefix", f"cut token matches tokens issued for {path}, but {problems[-1]}"


def check_credentials(credentials: Credentials, path: str, context) -> tuple:
    """Return (check, problem) for credentials from one placement.

    The problem never contains the token, the stream key or the user name
    when that could be a stream key.
    """
    where = credentials.placement
    if credentials.user == TOKEN_USER:
        check, problem = check_token(credentials.password, credentials.cut, path, context)
        return check, problem and f"{where}: {problem}"
    key_path = context.stream_key_paths.get(credentials.user)
    if key_path is None or credentials.password != credentials.user:
        return "stream_key", (
            f"{where}: user is not {TOKEN_USER!r} and user and pass are not "
            "the same issued stream key"
        )
    if key_path != path:
        return "stream_key", f"{where}: the stream key was issued for {key_path}, not {path}"
    return "stream_key", None


def check_publish(form: HookForm, placement: str, context) -> Verdict:
    """Decide an on_publish call under the placement rule (one of PLACEMENTS)."""
    path = f"{form.fields.get('app', '')}/{form.fields.get('name', '')}"
    found = {}
    tcurl_credentials = credentials_from_tcurl(form.fields.get("tcurl", ""))
    if tcurl_credentials is not None and placement in ("tcurl", "both", "any"):
        found["tcurl"] = tcurl_credentials
    query_credentials = credentials_from_query(form)
    if query_credentials is not None and placement in ("query", "both", "any"):
        found["query"] = query_credentials

    required = {"tcurl": ["tcurl"], "query": ["query"], "both": ["tcurl", "query"]}
    missing = [where for where in required.get(placement, []) if where not in found]
    if missing or not found:
        where = " and ".join(missing) or "tcurl or query"
        reason = f"credentials missing from {where} (placement {placement})"
        return Verdict(False, reason, {}, sorted(found))

    checks = {}
    problems = []
    for where, credentials in sorted(found.items()):
        check, problem = check_credentials(credentials, path, context)
        checks[where] = check
        if problem:
            problems.append(problem)
    reason = "; ".join(problems) or None
    return Verdict(not problems, reason, checks, sorted(found))


class HookContext:
    """What check_publish needs from the stand-in: keys, issued tokens and stream keys."""

    def __init__(self, keys: dict, tokens_by_path: dict, stream_key_paths: dict, now=None):
        self.keys = keys
        self.tokens_by_path = tokens_by_path
        self.stream_key_paths = stream_key_paths
        self.now = time.time() if now is None else now

    def issued_tokens(self, path: str) -> list:
        return list(self.tokens_by_path.get(path, ()))
