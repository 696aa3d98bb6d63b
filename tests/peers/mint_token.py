#!/usr/bin/python3
"""Mint an ES256 JWT with chosen claims, for tests of the SRT output.

The token goes to stdout, or to --out. The signing key is a P-256 key loaded
from --key, or generated (and written to --key when that file does not exist
yet). --public-key-out writes the public key for srt_receiver.py --public-key.

--streamid-bytes N pads a "pad" claim so that the streamid
publish:<path>:trax:<token> is exactly N bytes long. Not every N can be
reached, because base64url never encodes to a length of 4k+1 characters;
the script then fails and names the reachable neighbours.

Run with /usr/bin/python3 (python3-cryptography).
"""

import argparse
import base64
import json
import os
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def load_or_generate_key(path):
    if path and os.path.exists(path):
        with open(path, "rb") as handle:
            return serialization.load_pem_private_key(handle.read(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    if path:
        with open(path, "wb") as handle:
            handle.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
    return key


def sign(key, claims: dict) -> str:
    header = {"alg": "ES256", "typ": "JWT"}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    der = key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def streamid_length(path: str, token: str) -> int:
    return len(f"publish:{path}:trax:{token}".encode())


def pad_to_streamid(key, claims: dict, path: str, target_bytes: int) -> str:
    reachable = []
    for pad_length in range(0, 4096):
        padded = dict(claims, pad="x" * pad_length)
        token = sign(key, padded)
        length = streamid_length(path, token)
        reachable.append(length)
        if length == target_bytes:
            return token
        if length > target_bytes:
            break
    below = [n for n in reachable if n < target_bytes]
    raise SystemExit(
        f"mint_token: a streamid of {target_bytes} bytes cannot be reached with path "
        f"'{path}'; nearest are {below[-1] if below else 'none'} and {reachable[-1]}: "
        "change the path length by one"
    )


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", help="PEM private key to load, or to create if missing")
    parser.add_argument("--public-key-out", help="write the public key (PEM) here")
    parser.add_argument("--action", default="publish", help="'action' claim; '' omits it")
    parser.add_argument("--path", default="live/cam1", help="'path' claim; '' omits it")
    parser.add_argument(
        "--aud", action="append", help="'aud' entry; repeat for several (default trax-mediamtx)"
    )
    parser.add_argument("--aud-array", action="store_true", help="write 'aud' as an array")
    parser.add_argument("--no-aud", action="store_true", help="omit 'aud'")
    parser.add_argument(
        "--exp-in-s", type=int, default=600, help="'exp' relative to now, in seconds"
    )
    parser.add_argument("--no-exp", action="store_true", help="omit 'exp'")
    parser.add_argument(
        "--claim", action="append", default=[], help="extra claim NAME=JSON; repeatable"
    )
    parser.add_argument(
        "--streamid-bytes", type=int, help="pad the token to this streamid length"
    )
    parser.add_argument(
        "--streamid-path",
        help="path used in the streamid for --streamid-bytes (default: --path)",
    )
    parser.add_argument("--out", help="write the token here instead of stdout")
    return parser.parse_args()


def main():
    args = parse_args()
    key = load_or_generate_key(args.key)
    if args.public_key_out:
        with open(args.public_key_out, "wb") as handle:
            handle.write(
                key.public_key().public_bytes(
                    serialization.Encoding.PEM,
                    serialization.PublicFormat.SubjectPublicKeyInfo,
                )
            )

    claims = {}
    if args.action:
        claims["action"] = args.action
    if args.path:
        claims["path"] = args.path
    if not args.no_aud:
        audience = args.aud or ["trax-mediamtx"]
        claims["aud"] = audience if (args.aud_array or len(audience) > 1) else audience[0]
    if not args.no_exp:
        claims["exp"] = int(time.time()) + args.exp_in_s
    claims["iat"] = int(time.time())
    for item in args.claim:
        name, _, value = item.partition("=")
        claims[name] = json.loads(value)

    if args.streamid_bytes is not None:
        path = args.streamid_path if args.streamid_path is not None else args.path
        token = pad_to_streamid(key, claims, path, args.streamid_bytes)
    else:
        token = sign(key, claims)

    if args.out:
        with open(args.out, "w", encoding="ascii") as handle:
            handle.write(token)
    else:
        sys.stdout.write(token + "\n")


if __name__ == "__main__":
    main()
