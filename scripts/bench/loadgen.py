#!/usr/bin/env python3
"""Closed-loop load generator for `wuerstchen serve` (standard library only).

C workers each send requests back to back to POST /v1/images (Accept: image/png) and check that a PNG
comes back. Reports images per minute, latency percentiles and errors, plus the server's own batch-size
histogram over the run (from /metrics), as one JSON object per concurrency level:

    python3 scripts/bench/loadgen.py --url http://127.0.0.1:8080 --concurrency 1,2,4,8 \
        --sizes 512x512 --requests-per-worker 2 [--sizes 512x512,256x256 for mixed resolutions]

Workers start staggered by --stagger seconds (0 = all at once) so that requests arrive while others
are in flight, as they would from independent clients.
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse


def metric_sum(text, name):
    """Sum of every sample of `name` (all label sets) in a Prometheus exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def scrape(url):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    return text


def one_request(url, body, timeout):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    started = time.monotonic()
    try:
        c.request("POST", "/v1/images", body=json.dumps(body), headers={"Content-Type": "application/json", "Accept": "image/png"})
        r = c.getresponse()
        data = r.read()
        elapsed = time.monotonic() - started
        if r.status == 200 and data[:8] == b"\x89PNG\r\n\x1a\n":
            return elapsed, None
        return elapsed, f"{r.status}: {data[:200]!r}"
    except Exception as e:  # noqa: BLE001 - any failure is a failed request here
        return time.monotonic() - started, repr(e)
    finally:
        c.close()


def run_level(args, concurrency):
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    latencies, errors, lock = [], [], threading.Lock()
    before = scrape(args.url)

    per_worker = args.requests_per_worker
    if args.total_requests:
        per_worker = max(1, args.total_requests // concurrency)

    def worker(index):
        time.sleep(index * args.stagger)
        for k in range(per_worker):
            w, h = sizes[(index + k) % len(sizes)]
            body = {"prompt": f"a photo of a cat, worker {index}, request {k}", "width": w, "height": h,
                    "seed": index * 1000 + k}
            if args.prior_steps:
                body["prior_steps"] = args.prior_steps
            if args.decoder_steps:
                body["decoder_steps"] = args.decoder_steps
            elapsed, error = one_request(args.url, body, args.timeout)
            with lock:
                (errors if error else latencies).append(error or elapsed)

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    after = scrape(args.url)
    batches = metric_sum(after, "wuerstchen_batch_size_count") - metric_sum(before, "wuerstchen_batch_size_count")
    batched = metric_sum(after, "wuerstchen_batch_size_sum") - metric_sum(before, "wuerstchen_batch_size_sum")
    ordered = sorted(latencies)

    def pct(p):
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))] if ordered else None

    return {
        "concurrency": concurrency, "sizes": args.sizes, "requests": len(latencies) + len(errors),
        "ok": len(latencies), "errors": errors[:5], "error_count": len(errors), "wall_seconds": round(wall, 2),
        "images_per_minute": round(60 * len(latencies) / wall, 3) if wall > 0 else None,
        "p50_seconds": round(pct(50), 2) if ordered else None, "p95_seconds": round(pct(95), 2) if ordered else None,
        "mean_seconds": round(statistics.mean(ordered), 2) if ordered else None,
        "mean_batch": round(batched / batches, 2) if batches else None,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--concurrency", default="1,2,4,8", help="comma-separated worker counts")
    p.add_argument("--sizes", default="512x512", help="WxH[,WxH...]: workers cycle through them (mixed resolutions)")
    p.add_argument("--requests-per-worker", type=int, default=2)
    p.add_argument("--total-requests", type=int, help="requests per level, split among the workers (overrides --requests-per-worker)")
    p.add_argument("--prior-steps", type=int)
    p.add_argument("--decoder-steps", type=int)
    p.add_argument("--stagger", type=float, default=0.0, help="seconds between worker starts")
    p.add_argument("--timeout", type=float, default=3600)
    args = p.parse_args()
    for c in [int(v) for v in args.concurrency.split(",")]:
        print(json.dumps(run_level(args, c)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
