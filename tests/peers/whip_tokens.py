"""Bearer token checks of the WHIP receiver (whip_receiver.py).

Three modes, chosen on the command line:
  JwksTokenCheck   an ES256 token whose kid is in the JWKS and whose
                   signature verifies, with claims that fit the stream path;
  FileTokenCheck   the token equals the content of a file (surrounding
                   whitespace stripped);
  AnyTokenCheck    every token passes, a missing one too.

A check returns None when the token passes and a short reason otherwise.
Reasons never contain the token.
"""

import hmac
import json
import time
import urllib.request

import es256

MAX_KID_LABEL_CHARS = 64


class AnyTokenCheck:
    def __call__(self, token, path: str):
        return None


class FileTokenCheck:
    def __init__(self, file: str):
        with open(file, encoding="utf-8") as handle:
            self.expected = handle.read().strip().encode("utf-8")

    def __call__(self, token, path: str):
        if token is None:
            return "Authorization: Bearer token missing"
        if not hmac.compare_digest(token.encode("utf-8"), self.expected):
            return "token does not match the expected token"
        return None


class JwksTokenCheck:
    """ES256 signature via the JWKS, then the WHIP claims.

    The JWKS is fetched at start and again when a token names a kid it
    lacks. Claims: aud (a string or a list) contains the audience, action
    is "publish", path equals the stream path, exp (when present) has not
    passed, and can_publish, when present, is true.
    """

    def __init__(self, url: str, audience: str, timeout_s: float, log):
        self.url = url
        self.audience = audience
        self.timeout_s = timeout_s
        self.log = log
        self.keys = {}
        self.fetch("start")

    def fetch(self, trigger: str):
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout_s) as response:
                document = json.loads(response.read())
            self.keys = parse_jwks(document)
        except (OSError, ValueError) as error:
            self.log(f"JWKS fetch ({trigger}) failed: {type(error).__name__}: {error}")
            return
        self.log(f"JWKS fetch ({trigger}): kids {sorted(self.keys)}")

    def __call__(self, token, path: str):
        if token is None:
            return "Authorization: Bearer token missing"
        try:
            header, claims, parts = es256.split_token(token)
        except ValueError as error:
            return str(error)
        reason = self.check_signature(header, parts)
        if reason is not None:
            return reason
        return check_claims(claims, path, self.audience)

    def check_signature(self, header: dict, parts):
        if header.get("alg") != "ES256":
            return f"token alg {header.get('alg')!r} is not 'ES256'"
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            return "token header names no kid"
        if kid not in self.keys:
            self.fetch("unknown kid")
        key = self.keys.get(kid)
        label = kid if len(kid) <= MAX_KID_LABEL_CHARS else kid[:MAX_KID_LABEL_CHARS] + "..."
        if key is None:
            return f"token kid {label!r} is not in the JWKS, also after fetching it again"
        if not es256.verify(key, parts):
            return f"token signature does not verify with JWKS key {label!r}"
        return None


def parse_jwks(document) -> dict:
    """Return {kid: public key} of the ES256 signing keys; skip other keys."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS has no 'keys' list")
    keys = {}
    for jwk in document["keys"]:
        usable = (
            isinstance(jwk, dict)
            and isinstance(jwk.get("kid"), str)
            and jwk.get("alg", "ES256") == "ES256"
            and jwk.get("use", "sig") == "sig"
        )
        if not usable:
            continue
        try:
            keys[jwk["kid"]] = es256.public_key_from_jwk(jwk)
        except ValueError:
            continue
    return keys


def check_claims(claims: dict, path: str, audience: str):
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences
    if not isinstance(audiences, list) or audience not in audiences:
        return f"claim aud {claims.get('aud')!r} lacks {audience!r}"
    if claims.get("action") != "publish":
        return f"claim action {claims.get('action')!r} is not 'publish'"
    if claims.get("path") != path:
        return f"claim path {claims.get('path')!r} is not {path!r}"
    if "can_publish" in claims and claims["can_publish"] is not True:
        return f"claim can_publish is {claims['can_publish']!r}"
    expiry = claims.get("exp")
    if expiry is not None and not isinstance(expiry, (int, float)):
        return "claim exp is not a number"
    if expiry is not None and time.time() >= expiry:
        return f"token expired {time.time() - expiry:.0f} s ago"
    return None
