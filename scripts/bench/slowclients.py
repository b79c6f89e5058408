#!/usr/bin/env python3
"""Slow clients against `wuerstchen serve` (issue 12): slowloris heads, slow bodies and slow readers
hold connections while a probe measures how fast `GET /healthz` is answered (standard library only).

Starts the server itself on a free loopback port (demo model), with `limits.max_connections` raised so
that the slow connections do not crowd the probe out (--max-connections, default 1024):

    python3 scripts/bench/slowclients.py --binary .build/release/wuerstchen --duration 60

Attackers (one process, non-blocking sockets; each reconnects when the server closes it, as an
attacker would):
- --slowloris (512): a request head sent one header byte every --trickle seconds (the server's
  `header_timeout` closes them);
- --slow-body (64): `POST /v1/images` with `Content-Length: 100000`, one body byte every --trickle
  seconds (`body_timeout`/`body_deadline`);
- --slow-read (64): 64 pipelined `GET /metrics` with a 4 KB receive buffer, reading 1 KB every second
  (`write_high_water_mark` holds further answers back).
The probe (the main process): a new connection every --interval seconds, `GET /healthz`, timed from
connect to the end of the answer. Prints one JSON object: the probe's p50/p99/max in ms, how many took
over --target-ms (50), failures, and how many slow connections were open (sampled). Exit status 1 if the
p99 is over the target or a probe failed.
"""
import argparse
import json
import multiprocessing
import os
import resource
import selectors
import socket
import subprocess
import sys
import time
import http.client


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Slow:
    """One slow connection: what it sends, how fast, and whether it reads."""

    def __init__(self, kind, port, trickle):
        self.kind, self.port, self.trickle = kind, port, trickle
        self.sock = None
        self.pending = b""
        self.next_at = 0.0
        self.reconnects = 0
        self.watching = False

    def connect(self, sel, now):
        if self.sock:
            try:
                if self.watching:
                    sel.unregister(self.sock)
            except (KeyError, ValueError):
                pass
            self.sock.close()
            self.reconnects += 1
        s = socket.socket()
        if self.kind == "read":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        self.sock = s
        if self.kind == "loris":
            self.pending = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4000 + b"\r\n\r\n"
        elif self.kind == "body":
            self.pending = (b"POST /v1/images HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 100000\r\n\r\n")
        else:
            self.pending = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 64
        self.next_at = now + 0.05
        sel.register(s, selectors.EVENT_READ, self)
        self.watching = True

    def tick(self, sel, now):
        if now < self.next_at:
            return
        try:
            if self.kind == "loris":
                n = self.sock.send(self.pending[:1])
                self.pending = self.pending[n:] or b"a"
            elif self.kind == "body":
                if self.pending:
                    n = self.sock.send(self.pending)
                    self.pending = self.pending[n:]
                else:
                    self.sock.send(b"x")
            else:
                if self.pending:
                    n = self.sock.send(self.pending)
                    self.pending = self.pending[n:]
                if not self.watching:
                    sel.register(self.sock, selectors.EVENT_READ, self)
                    self.watching = True
            self.next_at = now + (1.0 if self.kind == "read" else self.trickle)
        except BlockingIOError:
            self.next_at = now + 0.2
        except OSError:
            self.connect(sel, now)

    def readable(self, sel, now):
        try:
            data = self.sock.recv(1024 if self.kind == "read" else 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.connect(sel, now)
        elif self.kind == "read":
            # 1 KB a second: unwatched until the next tick (level-triggered readiness would spin).
            sel.unregister(self.sock)
            self.watching = False


def attack(port, counts, trickle, duration, stats):
    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
    sel = selectors.DefaultSelector()
    now = time.time()
    conns = [Slow(k, port, trickle) for k, n in (("loris", counts[0]), ("body", counts[1]), ("read", counts[2])) for _ in range(n)]
    for i, c in enumerate(conns):
        c.connect(sel, now)
        if i % 64 == 63:
            time.sleep(0.05)  # do not overflow the accept backlog at once
    end = time.time() + duration
    while time.time() < end:
        now = time.time()
        for key, _ in sel.select(timeout=0.1):
            key.data.readable(sel, now)
        for c in conns:
            c.tick(sel, now)
        stats["reconnects"] = sum(c.reconnects for c in conns)
    for c in conns:
        c.sock.close()


def probe(port, timeout=5):
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", "/healthz")
    r = c.getresponse()
    r.read()
    c.close()
    if r.status != 200:
        raise RuntimeError(f"status {r.status}")
    return (time.perf_counter() - t0) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=".build/release/wuerstchen")
    ap.add_argument("--slowloris", type=int, default=512)
    ap.add_argument("--slow-body", type=int, default=64)
    ap.add_argument("--slow-read", type=int, default=64)
    ap.add_argument("--trickle", type=float, default=5.0)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--target-ms", type=float, default=50)
    ap.add_argument("--max-connections", type=int, default=1024)
    args = ap.parse_args()

    resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
    port = free_port()
    env = dict(os.environ, WUERSTCHEN_LIMITS_MAX_CONNECTIONS=str(args.max_connections), WUERSTCHEN_LOG_LEVEL="warning")
    server = subprocess.Popen([args.binary, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                probe(port)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit("slowclients.py: the server did not start")
                time.sleep(0.2)
        quiet = sorted(probe(port) for _ in range(50))
        stats = multiprocessing.Manager().dict()
        attacker = multiprocessing.Process(target=attack, args=(port, (args.slowloris, args.slow_body, args.slow_read),
                                                                args.trickle, args.duration, stats))
        attacker.start()
        time.sleep(3)  # the slow connections are open
        times, failures, open_conns = [], [], []
        end = time.time() + args.duration - 5
        while time.time() < end:
            try:
                times.append(probe(port))
            except Exception as e:  # noqa: BLE001
                failures.append(f"{type(e).__name__}: {e}")
            if len(times) % 50 == 0:
                open_conns.append(len(os.listdir(f"/proc/{server.pid}/fd")))
            time.sleep(args.interval)
        attacker.join()
        times.sort()

        def pct(v, p):
            return round(v[min(len(v) - 1, int(p * len(v)))], 1) if v else None

        result = {
            "slowloris": args.slowloris, "slow_body": args.slow_body, "slow_read": args.slow_read,
            "duration_s": args.duration, "probes": len(times), "failures": len(failures), "failure_examples": failures[:5],
            "quiet_ms": {"p50": pct(quiet, 0.5), "p99": pct(quiet, 0.99), "max": pct(quiet, 1.0)},
            "loaded_ms": {"p50": pct(times, 0.5), "p99": pct(times, 0.99), "max": pct(times, 1.0)},
            "over_target": sum(t > args.target_ms for t in times), "target_ms": args.target_ms,
            "server_fds_sampled": {"min": min(open_conns, default=None), "max": max(open_conns, default=None)},
            "attacker_reconnects": stats.get("reconnects"),
            "load_average": os.getloadavg(),
        }
        print(json.dumps(result, indent=1))
        ok = not failures and times and pct(times, 0.99) <= args.target_ms
    finally:
        server.terminate()
        try:
            server.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.kill()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
