#!/usr/bin/env python3
"""Latency nginx adds in front of one instance: median of sequential keep-alive requests, direct and
through deploy/nginx/wuerstchen.conf (set up as scripts/ci/e2e_nginx.py does), for /healthz and a small
demo-model generation (128 px, 2 + 2 steps).

    python3 scripts/bench/nginx_overhead.py --app STAGED [--nginx /usr/sbin/nginx] [--repeats 3]

STAGED is a folder made by scripts/container/build.sh.
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ci"))
import e2e_nginx  # noqa: E402


def median_ms(port, method, path, body, n):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"{method} {path} on {port}: {response.status}")
        times.append(time.perf_counter() - started)
    conn.close()
    return statistics.median(times) * 1e3


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", required=True)
    parser.add_argument("--nginx", default="/usr/sbin/nginx")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="wuerstchen-nginx-bench-")
    os.chmod(workdir, 0o755)
    instance = e2e_nginx.Instance(args.app, "a", workdir)
    nginx, port = e2e_nginx.start_nginx(args.nginx, workdir, [instance.port])
    generation = json.dumps({"prompt": "a cat", "width": 128, "height": 128, "prior_steps": 2, "decoder_steps": 2})
    try:
        for repeat in range(args.repeats):
            row = {
                "healthz_direct_ms": median_ms(instance.port, "GET", "/healthz", None, 2000),
                "healthz_nginx_ms": median_ms(port, "GET", "/healthz", None, 2000),
                "generation_direct_ms": median_ms(instance.port, "POST", "/v1/images", generation, 100),
                "generation_nginx_ms": median_ms(port, "POST", "/v1/images", generation, 100),
            }
            print(json.dumps({"repeat": repeat, **{k: round(v, 3) for k, v in row.items()}}))
    finally:
        instance.stop()
        nginx.terminate()
        nginx.wait()


if __name__ == "__main__":
    main()
