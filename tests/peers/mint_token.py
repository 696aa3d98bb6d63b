#!/usr/bin/python3
"""Mint an ES256 JWT with chosen claims, for tests of the SRT output.

The token goes to stdout, or to --out. The signing key is a P-256 key loaded
from --key, or generated (and written to --key when that file does not exist
yet). --public-key-out writes the public key for srt_receiver.py --public-key.
The header names no kid unless --kid or --kid-thumbprint is given.

--streamid-bytes N pads a "pad" claim so that the streamid
publish:<path>:trax:<token> is exactly N bytes long. Not every N can be
reached, because base64url never encodes to a length of 4k+1 characters;
the script then fails and names the reachable neighbours.

Run with /usr/bin/python3 (python3-cryptography).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import es256  # noqa: E402


def load_or_generate_key(path):
    if path and os.path.exists(path):
        return es256.load_private_key(path)
    key = es256.generate_key()
    if path:
        with open(path, "wb") as handle:
            handle.write(es256.private_key_pem(key))
    return key


def streamid_length(path: str, token: str) -> int:
    return len(f"publish:{path}:trax:{token}".encode())


def pad_to_streamid(key, kid, claims: dict, path: str, target_bytes: int) -> str:
    reachable = []
    for pad_length in range(0, 4096):
        padded = dict(claims, pad="x" * pad_length)
        token = es256.sign(key, padded, kid)
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
    kid = parser.add_mutually_exclusive_group()
    kid.add_argument("--kid", help="put this key id in the token header (default: none)")
    kid.add_argument(
        "--kid-thumbprint",
        action="store_true",
        help="put the key's RFC 7638 thumbprint in the header as kid, as v1_standin.py does",
    )
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
            handle.write(es256.public_key_pem(key.public_key()))
    kid = es256.thumbprint(key.public_key()) if args.kid_thumbprint else args.kid

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
        token = pad_to_streamid(key, kid, claims, path, args.streamid_bytes)
    else:
        token = es256.sign(key, claims, kid)

    if args.out:
        with open(args.out, "w", encoding="ascii") as handle:
            handle.write(token)
    else:
        sys.stdout.write(token + "\n")


if __name__ == "__main__":
    main()
