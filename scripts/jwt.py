#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Prints an HS256/HS384/HS512 JWT for imgate's auth.jwt stage (docs and integration tests).

    scripts/jwt.py --secret S --sub alice [--app A] [--device D] [--exp-in 3600] [--alg HS256]

Standard library only. --exp-in 0 leaves out "exp"; a negative value makes an expired token.
"""
import argparse
import base64
import hashlib
import hmac
import json
import sys
import time

DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(secret: bytes, claims: dict, alg: str = "HS256") -> str:
    header = {"alg": alg, "typ": "JWT"}
    signing_input = ".".join(
        b64url(json.dumps(part, separators=(",", ":")).encode("utf-8"))
        for part in (header, claims))
    mac = hmac.new(secret, signing_input.encode("ascii"), DIGESTS[alg]).digest()
    return signing_input + "." + b64url(mac)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Print an HMAC-signed JWT.")
    key = parser.add_mutually_exclusive_group(required=True)
    key.add_argument("--secret", help="HMAC secret")
    key.add_argument("--secret-file",
                     help="file holding the secret (trailing newlines stripped, as imgate does)")
    parser.add_argument("--sub", required=True, help="user id (the sub claim)")
    parser.add_argument("--app", help="app claim")
    parser.add_argument("--device", help="device claim")
    parser.add_argument("--exp-in", type=int, default=3600,
                        help="seconds until exp (default 3600; 0 omits exp)")
    parser.add_argument("--nbf-in", type=int, help="seconds until nbf (omitted by default)")
    parser.add_argument("--iss", help="iss claim")
    parser.add_argument("--aud", help="aud claim")
    parser.add_argument("--alg", default="HS256", choices=sorted(DIGESTS), help="default HS256")
    parser.add_argument("--now", type=int, help="pretend time (seconds since the epoch)")
    args = parser.parse_args(argv)

    if args.secret is not None:
        secret = args.secret.encode("utf-8")
    else:
        with open(args.secret_file, "rb") as f:
            secret = f.read().rstrip(b"\r\n")
    now = args.now if args.now is not None else int(time.time())
    claims = {"sub": args.sub, "iat": now}
    if args.app is not None:
        claims["app"] = args.app
    if args.device is not None:
        claims["device"] = args.device
    if args.exp_in != 0:
        claims["exp"] = now + args.exp_in
    if args.nbf_in is not None:
        claims["nbf"] = now + args.nbf_in
    if args.iss is not None:
        claims["iss"] = args.iss
    if args.aud is not None:
        claims["aud"] = args.aud
    print(sign(secret, claims, args.alg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
