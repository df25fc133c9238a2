#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Uplink through imgate to a backend: added latency per hop and throughput (quick measurement
until the C++ load generator lands).

Starts a test backend (test/integration/backend.py, Python standard library) and imgate with a
route stage to it, then:
  - direct: N sequential POSTs from this process straight to the backend (keep-alive);
  - via imgate: N sequential SENDs over one TCP-frame session, each waiting for its SEND_ACK
    (which imgate sends after the backend answered);
  the difference of the medians is what the gateway hop adds;
  - throughput: C concurrent TCP-frame clients sending M messages each, acks counted.
Prints one JSON object. Bounded in count and time.

  /usr/bin/python3 bench/quick_uplink.py --messages 2000 --clients 8
"""
import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))
import imgate_tcp as tf  # noqa: E402
from backend import Backend  # noqa: E402
from quick_measure import free_port, token, SECRET  # noqa: E402

CONFIG = """
workers: {workers}
log: {{ level: notice, access_log: false }}
sessions: {{ idle_timeout: 1h, max_conns_per_user: 0 }}
upstreams:
  app:
    backends: [ {{ address: "{backend}" }} ]
    max_connections: 32
listeners:
  - name: tcp
    type: stream
    bind: 127.0.0.1:{port}
    protocol: proto.tcp_frame
    pipeline: im
pipelines:
  im:
    - auth.jwt: {{ secret: {secret} }}
    - route: {{ rules: [ {{ upstream: app, path: /im }} ], dedupe_window: 0 }}
"""


def pct(samples, p):
    return round(samples[min(len(samples) - 1, int(len(samples) * p))], 3)


def summary(samples):
    samples = sorted(samples)
    return {"p50_ms": round(statistics.median(samples), 3), "p90_ms": pct(samples, 0.9),
            "p99_ms": pct(samples, 0.99)}


def direct(backend, n):
    conn = http.client.HTTPConnection("127.0.0.1", backend.port)
    body = json.dumps({"user": "u", "body": "x" * 64})
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("POST", "/im", body, {"Content-Type": "application/json"})
        conn.getresponse().read()
        out.append((time.perf_counter() - t0) * 1e3)
    conn.close()
    return out


def via_gateway(port, n, user):
    c = tf.TcpFrameClient("127.0.0.1", port, timeout=10)
    c.hello(token=token(user))
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        c.send("x" * 64, event="chat", msg_id=f"{user}-{i}")
        ack = c.recv_type(tf.SEND_ACK, timeout=10)
        assert ack.get("status", 0) == 0, ack
        out.append((time.perf_counter() - t0) * 1e3)
    c.shutdown()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", default="2")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "imgate"))
    args = ap.parse_args()
    backend = Backend("bench")
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="imgate-uplink-")
    cfg = os.path.join(tmp, "uplink.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(workers=args.workers, backend=backend.address, port=port, secret=SECRET))
    proc = subprocess.Popen([args.binary, "-c", cfg], stderr=open(os.path.join(tmp, "log"), "w"))
    try:
        time.sleep(0.5)
        direct(backend, 200)  # warm up
        via_gateway(port, 200, "warm")
        d = direct(backend, args.messages)
        g = via_gateway(port, args.messages, "seq")
        per_client = max(1, args.messages // args.clients)
        threads = [threading.Thread(target=via_gateway, args=(port, per_client, f"c{i}"))
                   for i in range(args.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        ds, gs = summary(d), summary(g)
        print(json.dumps({
            "messages": args.messages,
            "direct_to_backend": ds,
            "via_imgate": gs,
            "added_by_gateway_p50_ms": round(gs["p50_ms"] - ds["p50_ms"], 3),
            "throughput": {"clients": args.clients, "acked": per_client * args.clients,
                           "seconds": round(elapsed, 2),
                           "messages_per_second": round(per_client * args.clients / elapsed)},
            "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True).stdout.strip(),
        }))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        backend.stop()


if __name__ == "__main__":
    main()
