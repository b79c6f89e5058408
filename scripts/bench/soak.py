#!/usr/bin/env python3
"""Soak test for `wuerstchen serve` (issue 12): many requests from concurrent clients against the demo
model, some cancelled by disconnect and some malformed, with the server's memory and descriptors
watched (standard library only).

Starts the server itself (so that it can read /proc/PID), on a free loopback port:

    python3 scripts/bench/soak.py --binary .build/release/wuerstchen --requests 2000 --clients 16

Mix per request (seeded, so runs repeat): sizes 128/256 px with 2-4 steps per stage, by Accept image/png,
application/json, text/event-stream, multipart (2 images) and the OpenAI endpoint; 1 in 10 cancelled by
the client going away mid-generation (half of those close, half reset with SO_LINGER 0); 1 in 20
malformed (invalid JSON, a wrong field, a bad request line, a body shorter than its Content-Length).

Checks (exit status 1 if one fails): the server never exits; every well-formed request that was not
cancelled is answered 200 with its image(s); every malformed one gets its 4xx; RSS after the run is within
--rss-tolerance (5%) of RSS after the first --rss-baseline (200) requests (checked only when the run
has at least 5x that many; a short run reports it); the open descriptors return to the idle count.
The run pauses after the first --rss-baseline requests. Both RSS figures are taken once those requests
are answered and the engine has gone idle and given its reuse memory back (`scheduler.idle_release_ms`,
counted by `wuerstchen_idle_memory_releases_total`), so they compare what the process keeps, not how many
batches happened to be in flight. The samples taken under load are printed as well.
Prints one JSON object: counts, latencies, RSS, descriptors and the server's buffer cache
(`wuerstchen_buffer_cache_bytes`) every --sample-every requests.
--env NAME=VALUE (repeatable) sets the server's environment (e.g. MALLOC_ARENA_MAX=2).
"""
import argparse
import base64
import http.client
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def metric(port, name):
    """The value of the server's unlabelled metric `name`, or None."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/metrics")
        for line in c.getresponse().read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    except OSError:
        pass
    return None


def buffer_cache_kb(port):
    """The server's `wuerstchen_buffer_cache_bytes` (freed tensor buffers it keeps), in kB, or None."""
    v = metric(port, "wuerstchen_buffer_cache_bytes")
    return None if v is None else int(v / 1024)


def releases(port):
    return metric(port, "wuerstchen_idle_memory_releases_total") or 0


def rss_when_released(port, pid, before, wait=60):
    """RSS (kB) once the idle engine has given memory back since the release count was `before` and has not
    computed since (its buffer cache still empty); None if not within `wait` seconds (the server's
    `scheduler.idle_release_ms` is 0 or longer)."""
    deadline = time.time() + wait
    while time.time() < deadline:
        if releases(port) > before and buffer_cache_kb(port) == 0:
            return rss_kb(pid)
        time.sleep(0.25)
    return None


def body(rng, size, n=1):
    steps = rng.randint(2, 4)
    return json.dumps({"prompt": rng.choice(["a red circle on a blue background", "a small green square on the left on a white background",
                                             "a large yellow ring at the top on a black background", "abstract"]),
                       "width": size, "height": size, "num_images": n, "seed": rng.randint(0, 1 << 31),
                       "prior_steps": steps, "decoder_steps": rng.randint(2, 4)})


PNG = b"\x89PNG\r\n\x1a\n"


def well_formed(port, kind, rng, timeout):
    """Sends one well-formed request; returns None if answered as it should be, else what went wrong."""
    size = rng.choice([128, 128, 256])
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if kind == "openai":
            c.request("POST", "/v1/images/generations", json.dumps({"prompt": "a blue ring", "size": f"{size}x{size}",
                                                                     "prior_steps": 2, "decoder_steps": 2}),
                      {"Content-Type": "application/json"})
        else:
            accept = {"png": "image/png", "json": "application/json", "sse": "text/event-stream", "multipart": "image/png"}[kind]
            c.request("POST", "/v1/images", body(rng, size, 2 if kind == "multipart" else 1),
                      {"Content-Type": "application/json", "Accept": accept})
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            return f"{kind}: status {r.status}: {data[:200]!r}"
        if kind == "png" and not data.startswith(PNG):
            return "png: not a PNG"
        if kind == "multipart" and data.count(PNG) != 2:
            return f"multipart: {data.count(PNG)} PNGs"
        if kind in ("json", "openai"):
            images = json.loads(data)["data"]
            if not images or not base64.b64decode(images[0]["b64_json"]).startswith(PNG):
                return f"{kind}: no image"
        if kind == "sse" and (b"event: image" not in data or b"event: done" not in data):
            return "sse: no image or done event"
        return None
    except Exception as e:  # noqa: BLE001 - any failure is a finding
        return f"{kind}: {type(e).__name__}: {e}"
    finally:
        c.close()


def cancelled(port, rng):
    """Starts a generation and goes away mid-way (close, or reset with SO_LINGER 0)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    b = json.dumps({"prompt": "a red circle", "width": 256, "height": 256, "prior_steps": 20, "decoder_steps": 20}).encode()
    accept = rng.choice(["image/png", "text/event-stream"])
    s.sendall(b"POST /v1/images HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: " + accept.encode()
              + b"\r\nContent-Length: " + str(len(b)).encode() + b"\r\n\r\n" + b)
    time.sleep(rng.uniform(0.05, 0.5))
    if rng.random() < 0.5:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


MALFORMED = [
    (b'{"prompt": "x", "width": 128', "application/json", 400),
    (b'{"prompt": "x", "widht": 128}', "application/json", 400),
    (b'{"prompt": "x", "width": 100, "height": 128}', "application/json", 400),
    (b'{"prompt": 5}', "application/json", 400),
    (b'{"prompt": "x"}', "text/plain", 415),
]


def malformed(port, rng, timeout):
    """Sends a malformed request; returns None if refused as it should be."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if rng.random() < 0.25:
            s.sendall(b"POST /v1/images HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
            want = 400
        elif rng.random() < 0.33:
            s.sendall(b"GET /healthz HTTP/1.1\nHost: x\n\n")  # bare LF
            want = 400
        else:
            b, ctype, want = rng.choice(MALFORMED)
            s.sendall(b"POST /v1/images HTTP/1.1\r\nHost: x\r\nContent-Type: " + ctype.encode() + b"\r\nContent-Length: "
                      + str(len(b)).encode() + b"\r\nConnection: close\r\n\r\n" + b)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        status = int(data.split(b" ")[1]) if data.startswith(b"HTTP/1.1 ") else None
        return None if status == want else f"malformed: status {status}, expected {want}: {data[:120]!r}"
    except Exception as e:  # noqa: BLE001
        return f"malformed: {type(e).__name__}: {e}"
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=".build/release/wuerstchen")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rss-baseline", type=int, default=200, help="requests after which the reference RSS is taken")
    ap.add_argument("--rss-tolerance", type=float, default=0.05)
    ap.add_argument("--sample-every", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=300, help="seconds a client waits for one answer")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--env", action="append", default=[])
    args = ap.parse_args()

    port = free_port()
    env = dict(os.environ)
    env.update(kv.split("=", 1) for kv in args.env)
    env.update({"WUERSTCHEN_MAX_QUEUE": str(max(64, args.clients * 4)), "WUERSTCHEN_LOG_LEVEL": "warning"})
    server = subprocess.Popen([args.binary, "serve", "--port", str(port), "--threads", str(args.threads)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    errors = []
    stderr_tail = []
    threading.Thread(target=lambda: stderr_tail.extend(server.stderr), daemon=True).start()
    try:
        deadline = time.time() + 120
        while True:
            if server.poll() is not None:
                raise SystemExit(f"soak.py: the server exited at start ({server.returncode})")
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("soak.py: the server was not ready after 120 s")
            time.sleep(0.2)
        # Warm: one generation, so that model buffers count in the idle figures.
        well_formed(port, "png", random.Random(1), args.timeout)
        # Idle: the warm-up connection closed (two equal readings a second apart, at most 10 s).
        idle_fds = fd_count(server.pid)
        for _ in range(10):
            time.sleep(1)
            now_fds = fd_count(server.pid)
            if now_fds == idle_fds:
                break
            idle_fds = now_fds
        idle_rss = rss_when_released(port, server.pid, 0) or rss_kb(server.pid)
        releases_before = releases(port)

        rng = random.Random(args.seed)
        plan = []
        for _ in range(args.requests):
            x = rng.random()
            plan.append("cancel" if x < 0.1 else "malformed" if x < 0.15 else
                        rng.choice(["png", "png", "png", "json", "sse", "multipart", "openai"]))
        lock = threading.Lock()
        next_index = [0]
        # Workers take requests below stop_at[0]: first the baseline's, then the rest.
        stop_at = [min(args.rss_baseline, len(plan))]
        done = [0]
        samples = []
        latencies = []
        counts = {}
        baseline = [None]

        def worker(w):
            wr = random.Random(args.seed * 1000 + w)
            while True:
                with lock:
                    i = next_index[0]
                    if i >= stop_at[0]:
                        return
                    next_index[0] += 1
                kind = plan[i]
                t0 = time.time()
                if kind == "cancel":
                    cancelled(port, wr)
                    err = None
                elif kind == "malformed":
                    err = malformed(port, wr, args.timeout)
                else:
                    err = well_formed(port, kind, wr, args.timeout)
                with lock:
                    counts[kind] = counts.get(kind, 0) + 1
                    if kind not in ("cancel", "malformed"):
                        latencies.append(time.time() - t0)
                    if err:
                        errors.append(f"request {i}: {err}")
                    done[0] += 1
                    n = done[0]
                    if server.poll() is None and n % args.sample_every == 0:
                        samples.append((n, rss_kb(server.pid), fd_count(server.pid), buffer_cache_kb(port)))

        def run_clients():
            threads = [threading.Thread(target=worker, args=(w,)) for w in range(args.clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        t0 = time.time()
        run_clients()
        if server.poll() is None and stop_at[0] < len(plan):
            baseline[0] = rss_when_released(port, server.pid, releases_before)
            releases_before = releases(port)
            stop_at[0] = len(plan)
            run_clients()
        wall = time.time() - t0
        if server.poll() is not None:
            errors.append(f"the server exited during the run ({server.returncode})")
            raise SystemExit(1)
        # Descriptors: connections closing (linger, cancelled jobs finishing) settle within seconds.
        settle = time.time() + 30
        while fd_count(server.pid) > idle_fds and time.time() < settle:
            time.sleep(0.5)
        final_fds = fd_count(server.pid)
        final_rss = rss_when_released(port, server.pid, releases_before) if baseline[0] else rss_kb(server.pid)
        if final_fds > idle_fds:
            errors.append(f"open descriptors {final_fds} after the run, {idle_fds} when idle")
        growth = None
        if stop_at[0] > args.rss_baseline and not (baseline[0] and final_rss):
            errors.append("the engine did not give memory back within 60 s of going idle (scheduler.idle_release_ms)")
        elif baseline[0]:
            growth = (final_rss - baseline[0]) / baseline[0]
            if args.requests >= 5 * args.rss_baseline and growth > args.rss_tolerance:
                errors.append(f"RSS grew {growth * 100:.1f}% after request {args.rss_baseline} "
                              f"({baseline[0]} kB -> {final_rss} kB), more than {args.rss_tolerance * 100:.0f}%")
        latencies.sort()

        def pct(p):
            return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 3) if latencies else None

        print(json.dumps({
            "requests": args.requests, "clients": args.clients, "wall_s": round(wall, 1), "counts": counts,
            "latency_s": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
            "idle_rss_kb": idle_rss, "rss_after_baseline_kb": baseline[0], "final_rss_kb": final_rss,
            "rss_growth_after_baseline": None if growth is None else round(growth, 4),
            "rss_samples": [{"after": n, "rss_kb": r, "fds": f, "buffer_cache_kb": b} for n, r, f, b in samples],
            "idle_fds": idle_fds, "final_fds": final_fds, "errors": errors[:20], "error_count": len(errors),
            "env": args.env,
        }, indent=1))
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=40)
            except subprocess.TimeoutExpired:
                server.kill()
        if server.returncode not in (0, -15, None):
            errors.append(f"server exit status {server.returncode}")
            sys.stderr.write(b"".join(stderr_tail[-20:]).decode(errors="replace"))
    if errors:
        sys.stderr.write("soak.py: FAILED:\n" + "\n".join(errors[:20]) + "\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
