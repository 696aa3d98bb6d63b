"""Verify a user's OAuth access token (a JWT) issued by an OpenID provider.

The provider's discovery document (/.well-known/openid-configuration) names
the issuer and jwks_uri. The signature must verify with the key of that JWKS
that the token's kid names, with RS256 or ES256 as the key type requires.
"iss" must equal the issuer and "aud" must be or contain the expected
audience. "exp" must not have passed, nor "nbf" (when present) lie ahead. A
kid missing from the cached JWKS makes one new fetch of the JWKS, so a key
rotation is picked up.

Needs python3-cryptography.
"""

import json
import ssl
import threading
import time
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import es256

FETCH_TIMEOUT_S = 10
SUPPORTED_ALGORITHMS = ("RS256", "ES256")


class TokenRejected(Exception):
    """An access token that failed a check. The message never contains the token."""


def fetch_json(url: str, context) -> dict:
    """GET a JSON object, raising ValueError that names the URL."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S, context=context) as reply:
            value = json.load(reply)
    except (OSError, ValueError) as error:
        raise ValueError(f"GET {url} failed: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"GET {url} returned JSON that is not an object")
    return value


def rsa_key_from_jwk(jwk: dict):
    if jwk.get("kty") != "RSA":
        raise ValueError(f"kty is {jwk.get('kty')!r}, not 'RSA'")
    members = []
    for name in ("n", "e"):
        value = jwk.get(name)
        if not isinstance(value, str):
            raise ValueError(f"member {name} is missing")
        members.append(int.from_bytes(es256.b64url_decode(value), "big"))
    return rsa.RSAPublicNumbers(members[1], members[0]).public_key()


def verify_signature(algorithm: str, public_key, parts) -> bool:
    if algorithm == "ES256":
        return es256.verify(public_key, parts)
    try:
        signature = es256.b64url_decode(parts[2])
        public_key.verify(
            signature,
            f"{parts[0]}.{parts[1]}".encode("ascii"),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
        return True
    except (ValueError, InvalidSignature):
        return False


class OidcVerifier:
    """Access token checks against one issuer and one audience."""

    def __init__(self, issuer: str, audience: str, ca_file: str = None):
        self.audience = audience
        self.context = ssl.create_default_context(cafile=ca_file)
        discovery = fetch_json(issuer.rstrip("/") + "/.well-known/openid-configuration", self.context)
        self.issuer = discovery.get("issuer")
        if self.issuer != issuer.rstrip("/"):
            raise ValueError(
                f"the discovery document of {issuer} names the issuer {self.issuer!r}; "
                "pass the provider's issuer exactly"
            )
        self.jwks_uri = discovery.get("jwks_uri")
        if not isinstance(self.jwks_uri, str):
            raise ValueError(f"the discovery document of {issuer} has no jwks_uri")
        self.lock = threading.Lock()
        self.keys = {}
        self.refresh_keys()

    def refresh_keys(self):
        """Fetch the JWKS and keep the RSA and P-256 signing keys that have a kid."""
        jwks = fetch_json(self.jwks_uri, self.context)
        keys = {}
        for jwk in jwks.get("keys", []):
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig" or "kid" not in jwk:
                continue
            try:
                if jwk.get("kty") == "RSA":
                    keys[jwk["kid"]] = ("RS256", rsa_key_from_jwk(jwk))
                elif jwk.get("kty") == "EC":
                    keys[jwk["kid"]] = ("ES256", es256.public_key_from_jwk(jwk))
            except ValueError:
                continue
        with self.lock:
            self.keys = keys

    def key_for(self, kid):
        with self.lock:
            found = self.keys.get(kid)
        if found is None:
            try:
                self.refresh_keys()
            except ValueError as error:
                raise TokenRejected(f"the provider's JWKS is unavailable: {error}") from None
            with self.lock:
                found = self.keys.get(kid)
        if found is None:
            raise TokenRejected("the token's kid is not in the provider's JWKS")
        return found

    def verify(self, token: str) -> dict:
        """Return the claims of a valid access token, or raise TokenRejected."""
        try:
            header, claims, parts = es256.split_token(token)
        except ValueError as error:
            raise TokenRejected(str(error)) from None
        algorithm = header.get("alg")
        if algorithm not in SUPPORTED_ALGORITHMS:
            raise TokenRejected(f"token alg {algorithm!r} is not RS256 or ES256")
        key_algorithm, public_key = self.key_for(header.get("kid"))
        if key_algorithm != algorithm:
            raise TokenRejected(f"token alg {algorithm} does not match its key ({key_algorithm})")
        if not verify_signature(algorithm, public_key, parts):
            raise TokenRejected("token signature is invalid")

        if claims.get("iss") != self.issuer:
            raise TokenRejected(f"token iss {claims.get('iss')!r} is not {self.issuer!r}")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.audience not in audiences:
            raise TokenRejected(f"token aud {audience!r} does not contain {self.audience!r}")
        now = time.time()
        expiry = claims.get("exp")
        if not isinstance(expiry, (int, float)):
            raise TokenRejected("token has no numeric exp")
        if expiry <= now:
            raise TokenRejected(f"token expired {int(now - expiry)} s ago")
        not_before = claims.get("nbf")
        if isinstance(not_before, (int, float)) and not_before > now:
            raise TokenRejected("token is not valid yet (nbf)")
        return claims
