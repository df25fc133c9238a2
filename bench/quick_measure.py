#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Quick whole-system figures until the C++ load generator (bench/load/) lands.

Starts imgate on a bench config, opens N authenticated WebSocket connections (Debian's
python3-websockets, source addresses spread over 127.0.0.0/8), and reports:
  - idle memory: imgate's RSS delta / N;
  - push -> receive latency at low load: one push at a time to one user, from just before the
    HTTP request is written to the moment the client has the message (so it includes the push
    API's HTTP round trip), percentiles over M pushes.
Bounded in count and time; stops by itself. Prints one JSON object.

  /usr/bin/python3 bench/quick_measure.py --connections 10000 --pushes 500
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import websockets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "bench-secret-0123456789abcdef0123456789"
API_KEY = "bench-key"

CONFIG = """
workers: {workers}
log: {{ level: notice, access_log: false }}
sessions: {{ idle_timeout: 1h, max_conns_per_user: 0 }}
listeners:
  - name: edge
    bind: 127.0.0.1:{ws_port}
    locations:
      - path: /ws
        protocol: proto.websocket
        pipeline: im
        config: {{ permessage_deflate: {deflate} }}
  - name: push
    bind: 127.0.0.1:{push_port}
    locations:
      - path: /v1/
        protocol: proto.http_push
        config: {{ api_keys: [{api_key}] }}
pipelines:
  im:
    - auth.jwt: {{ secret: {secret} }}
"""


def b64(d):
    return base64.urlsafe_b64encode(d).rstrip(b"=").decode()


def token(sub):
    h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b64(json.dumps({"sub": sub, "exp": int(time.time()) + 7200}).encode())
    s = hmac.new(SECRET.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64(s)}"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def open_clients(n, port, concurrency=200):
    clients = [None] * n
    sem = asyncio.Semaphore(concurrency)

    async def one(i):
        async with sem:
            # Spread source addresses over 127.0.0.0/8 so 4-tuples never run out.
            src = f"127.{1 + (i // 60000) % 250}.{(i // 250) % 250}.{1 + i % 250}"
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws?token={token(f'u{i}')}",
                                          ping_interval=None, open_timeout=30, compression=None,
                                          local_addr=(src, 0), max_queue=4)
            clients[i] = ws  # clients[i] is user u<i>

    await asyncio.gather(*[one(i) for i in range(n)])
    return clients


async def measure_latency(ws, push_port, pushes):
    conn = http.client.HTTPConnection("127.0.0.1", push_port)
    body = json.dumps({"to": {"users": ["u0"]}, "data": "x" * 32})
    samples = []
    for _ in range(pushes):
        t0 = time.perf_counter()
        conn.request("POST", "/v1/push", body, {"Authorization": f"Bearer {API_KEY}",
                                                "Content-Type": "application/json"})
        msg = await asyncio.wait_for(ws.recv(), 5)
        t1 = time.perf_counter()
        resp = conn.getresponse()
        resp.read()
        assert msg == "x" * 32
        samples.append((t1 - t0) * 1e3)
    conn.close()
    samples.sort()
    return {
        "pushes": len(samples),
        "p50_ms": round(statistics.median(samples), 3),
        "p90_ms": round(samples[int(len(samples) * 0.9) - 1], 3),
        "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 3),
        "max_ms": round(samples[-1], 3),
    }


async def run(args, pid, ws_port, push_port):
    await asyncio.sleep(0.5)
    base = rss_kib(pid)
    t0 = time.time()
    clients = await open_clients(args.connections, ws_port)
    connect_s = time.time() - t0
    await asyncio.sleep(2)
    loaded = rss_kib(pid)
    latency = await measure_latency(clients[0], push_port, args.pushes)
    await asyncio.gather(*[c.close() for c in clients], return_exceptions=True)
    return {
        "connections": args.connections,
        "workers": args.workers,
        "connect_seconds": round(connect_s, 1),
        "rss_base_kib": base,
        "rss_loaded_kib": loaded,
        "rss_per_connection_bytes": round((loaded - base) * 1024 / args.connections),
        "push_to_receive": latency,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--pushes", type=int, default=500)
    ap.add_argument("--workers", default="2")
    ap.add_argument("--deflate", default="false")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "imgate"))
    args = ap.parse_args()
    # Each side needs one descriptor per connection; raise the soft limit as far as allowed.
    need = args.connections + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(need, hard)))
        except (ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            if hard < need:
                sys.exit(f"open-file limit {hard} is below the {need} this run needs")
    ws_port, push_port = free_port(), free_port()
    tmp = tempfile.mkdtemp(prefix="imgate-bench-")
    cfg = os.path.join(tmp, "bench.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(workers=args.workers, ws_port=ws_port, push_port=push_port,
                              api_key=API_KEY, secret=SECRET, deflate=args.deflate))
    proc = subprocess.Popen([args.binary, "-c", cfg], stderr=open(os.path.join(tmp, "log"), "w"))
    try:
        result = asyncio.run(asyncio.wait_for(run(args, proc.pid, ws_port, push_port), 600))
        result["commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                          capture_output=True, text=True).stdout.strip()
        print(json.dumps(result))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
