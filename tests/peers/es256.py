"""ES256 compact JWS and P-256 JWK helpers shared by the test peers.

Signatures use the JWS form (RFC 7518 section 3.4): r and s as two 32-byte
big-endian integers, not DER. Key ids default to the RFC 7638 thumbprint.

Needs python3-cryptography.
"""

import base64
import hashlib
import json
import string

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

COORDINATE_BYTES = 32
BASE64URL_ALPHABET = frozenset(string.ascii_letters + string.digits + "-_")


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url, raising ValueError on any other character."""
    if not set(text) <= BASE64URL_ALPHABET:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def compact_json(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def generate_key():
    return ec.generate_private_key(ec.SECP256R1())


def load_private_key(path: str):
    with open(path, "rb") as handle:
        key = serialization.load_pem_private_key(handle.read(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(f"{path} is not a P-256 (secp256r1) private key")
    return key


def private_key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign(key, claims: dict, kid: str = None) -> str:
    """Sign claims as a compact JWS, with kid in the header when given."""
    header = {"alg": "ES256", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = b64url_encode(compact_json(header)) + "." + b64url_encode(compact_json(claims))
    der = key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    raw = r.to_bytes(COORDINATE_BYTES, "big") + s.to_bytes(COORDINATE_BYTES, "big")
    return signing_input + "." + b64url_encode(raw)


def split_token(token: str):
    """Return (header, claims, parts) of a compact JWS without verifying it.

    Raises ValueError with a reason that never contains the token.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError(f"token has {len(parts)} parts, not 3")
    try:
        header = json.loads(b64url_decode(parts[0]))
    except ValueError:
        raise ValueError("token header is not base64url JSON") from None
    try:
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError:
        raise ValueError("token payload is not base64url JSON") from None
    if not isinstance(header, dict):
        raise ValueError("token header is not a JSON object")
    if not isinstance(claims, dict):
        raise ValueError("token payload is not a JSON object")
    return header, claims, parts


def verify(public_key, parts) -> bool:
    """Check the ES256 signature of a split compact JWS."""
    try:
        raw = b64url_decode(parts[2])
    except ValueError:
        return False
    if len(raw) != 2 * COORDINATE_BYTES:
        return False
    signature = encode_dss_signature(
        int.from_bytes(raw[:COORDINATE_BYTES], "big"),
        int.from_bytes(raw[COORDINATE_BYTES:], "big"),
    )
    try:
        public_key.verify(
            signature, f"{parts[0]}.{parts[1]}".encode("ascii"), ec.ECDSA(hashes.SHA256())
        )
        return True
    except InvalidSignature:
        return False


def public_jwk_members(public_key) -> dict:
    numbers = public_key.public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": b64url_encode(numbers.x.to_bytes(COORDINATE_BYTES, "big")),
        "y": b64url_encode(numbers.y.to_bytes(COORDINATE_BYTES, "big")),
    }


def thumbprint(public_key) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url) of a P-256 public key."""
    canonical = json.dumps(public_jwk_members(public_key), separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode("ascii")).digest())


def public_jwk(public_key, kid: str) -> dict:
    return {"kid": kid, **public_jwk_members(public_key), "alg": "ES256", "use": "sig"}


def public_key_from_jwk(jwk: dict):
    """Build a P-256 public key from a JWK, raising ValueError that names a bad member."""
    if jwk.get("kty") != "EC":
        raise ValueError(f"kty is {jwk.get('kty')!r}, not 'EC'")
    if jwk.get("crv") != "P-256":
        raise ValueError(f"crv is {jwk.get('crv')!r}, not 'P-256'")
    coordinates = []
    for name in ("x", "y"):
        value = jwk.get(name)
        if not isinstance(value, str):
            raise ValueError(f"member {name} is missing")
        raw = b64url_decode(value)
        if len(raw) != COORDINATE_BYTES:
            raise ValueError(f"member {name} has {len(raw)} bytes, not {COORDINATE_BYTES}")
        coordinates.append(int.from_bytes(raw, "big"))
    numbers = ec.EllipticCurvePublicNumbers(coordinates[0], coordinates[1], ec.SECP256R1())
    return numbers.public_key()
