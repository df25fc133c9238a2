# SPDX-License-Identifier: Apache-2.0
"""auth.jwt with a JWK Set: ES256 tokens chosen by kid, key rotation by editing the file and
reloading (open sessions stay, old-kid tokens are refused, new-kid tokens accepted), and a broken
key file that fails the reload and keeps the old keys.

Tokens are signed with Debian's python3-cryptography (the test is skipped without it)."""
import asyncio
import base64
import json
import os
import time

import pytest

from conftest import SECRET, make_token, render
from wsutil import connect, handshake_status, run

pytest.importorskip("cryptography")
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: E402


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Es256Key:
    """A P-256 key with a kid: its public JWK, and tokens signed with it (JWS raw R||S)."""

    def __init__(self, kid):
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())

    def jwk(self):
        nums = self.key.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256", "use": "sig",
                "x": b64url(nums.x.to_bytes(32, "big")), "y": b64url(nums.y.to_bytes(32, "big"))}

    def token(self, sub, exp_in=3600):
        now = int(time.time())
        header = {"alg": "ES256", "typ": "JWT", "kid": self.kid}
        payload = {"sub": sub, "iat": now, "exp": now + exp_in}
        signing = (b64url(json.dumps(header).encode()) + "." +
                   b64url(json.dumps(payload).encode()))
        r, s = utils.decode_dss_signature(self.key.sign(signing.encode(), ec.ECDSA(hashes.SHA256())))
        return signing + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def jwks_text(*keys):
    return json.dumps({"keys": [k.jwk() for k in keys]})


def jwks_config():
    """The default test config (echo pipeline) with the secret replaced by a JWK Set."""
    text = render(pipeline="echo")
    assert text.count(f"secret: {SECRET}") == 2
    return text.replace(f"secret: {SECRET}", "jwks_file: keys.jwks\n        algorithms: [ES256]")


def write_jwks(gw, text):
    with open(os.path.join(gw.dir, "keys.jwks"), "w") as f:
        f.write(text)


def reload_ok(gw):
    before = gw.read_log().count("reload done")
    gw.reload()
    assert gw.read_log().count("reload done") == before + 1, gw.read_log()[-2000:]


async def echo(ws, text):
    await ws.send(text)
    assert await asyncio.wait_for(ws.recv(), 5) == text


def test_jwks_rotation_keeps_sessions_and_switches_keys(gateway_factory):
    a, b = Es256Key("a"), Es256Key("b")
    gw = gateway_factory(jwks_config(), files={"keys.jwks": jwks_text(a)})
    assert 'kid "a" P-256 ES256' in gw.read_log()

    async def main():
        alice = await connect(gw.ws_url(token=a.token("alice")))
        await echo(alice, "before rotation")
        assert await handshake_status(gw.ws_url(token=b.token("bob"))) == 401

        write_jwks(gw, jwks_text(b))
        await asyncio.to_thread(reload_ok, gw)

        # The session opened with key A lives on, in the new generation: echo and push work.
        await echo(alice, "after rotation")
        status, body, _ = await asyncio.to_thread(gw.push, {"users": ["alice"]}, "pushed")
        assert status == 200 and body["sessions"] == 1
        assert await asyncio.wait_for(alice.recv(), 5) == "pushed"
        # New sessions: key A is gone, key B works.
        assert await handshake_status(gw.ws_url(token=a.token("alice"))) == 401
        bob = await connect(gw.ws_url(token=b.token("bob")))
        await echo(bob, "hello from b")
        await bob.close()
        await alice.close()
    run(main())


def test_broken_jwks_fails_reload_and_keeps_old_keys(gateway_factory):
    a = Es256Key("a")
    gw = gateway_factory(jwks_config(), files={"keys.jwks": jwks_text(a)})

    async def main():
        jwk = a.jwk()
        jwk["x"] = "not base64url!"
        write_jwks(gw, json.dumps({"keys": [jwk]}))
        before = gw.read_log().count("reload failed,")
        await asyncio.to_thread(gw.reload)
        log = gw.read_log()
        assert log.count("reload failed,") == before + 1
        assert "jwks_file" in log and 'keys[0] (kid "a"): "x" is not valid base64url' in log
        # The previous generation, with key A, still serves new connections.
        ws = await connect(gw.ws_url(token=a.token("carol")))
        await echo(ws, "still key a")
        await ws.close()
        # Fixing the file and reloading again works.
        b = Es256Key("b")
        write_jwks(gw, jwks_text(a, b))
        await asyncio.to_thread(reload_ok, gw)
        for key in (a, b):
            ws = await connect(gw.ws_url(token=key.token("dave")))
            await echo(ws, "key " + key.kid)
            await ws.close()
    run(main())


def test_rooms_claim_joins_rooms_at_connect(gateway_factory):
    """A token's rooms claim: the session is in those rooms as soon as it is open."""
    gw = gateway_factory()

    async def main():
        ws = await connect(gw.ws_url(token=make_token("roomy", extra={"rooms": ["lobby", "vip"]})))
        status, body, _ = gw.push({"room": "vip"}, "for vips")
        assert status == 200 and body["sessions"] == 1, body
        assert await asyncio.wait_for(ws.recv(), 5) == "for vips"
        status, body, _ = gw.http("GET", "/v1/rooms/lobby/members")
        assert status == 200 and "roomy" in json.dumps(body), body
        await ws.close()

    run(main())
