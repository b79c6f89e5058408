#!/usr/bin/env python3
"""End to end through a real nginx: two `wuerstchen serve` instances on loopback (the staged image
contents of scripts/container/build.sh, demo model, run as the image's user when root) behind nginx
running deploy/nginx/wuerstchen.conf with only the upstream addresses, the listen port and the access
log path replaced.

    python3 scripts/ci/e2e_nginx.py --app STAGED --nginx /usr/sbin/nginx

CI runs these checks against the image instead (scripts/ci/container_e2e.py subclasses E2E, issue 14); run this by
hand on a machine without podman. scripts/bench/nginx_overhead.py uses its Instance and start_nginx.

Through nginx it checks: health and X-Request-Id (passed on, logged by both, generated when absent);
a PNG streams (chunked, valid); an SSE stream arrives incrementally; /metrics scrapes; the official
openai SDK works (WUERSTCHEN_CI_PYTHON, scripts/ci/openai_venv.sh); nginx's own errors are JSON; one
instance SIGKILLed under load: every request ends with an image or a clear error, none lost; one
instance SIGTERMed under load: it drains, exits 0 and no request fails. Last line:
`e2e_nginx: N passed, M failed`; exit 1 when any check failed. Stdlib only; bounded in time.
"""
import argparse
import base64
import http.client
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from png_check import png_size  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# Long enough to be in flight when an instance is killed or drained (a few seconds alone with the trained demo
# model at 512 px and 1 thread), short enough that eight of them on one instance answer within 90 s.
LONG = {"width": 512, "height": 512, "prior_steps": 30, "decoder_steps": 30}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Instance:
    """One `wuerstchen serve` started as the image's ENTRYPOINT does, with the staged config."""

    def __init__(self, app, name, workdir, port=0):
        self.name = name
        self.log_path = Path(workdir) / f"{name}.log"
        env = dict(os.environ, WUERSTCHEN_CONFIG=f"{app}/config/server.json", WUERSTCHEN_HOST="127.0.0.1",
                   WUERSTCHEN_PORT=str(port), WUERSTCHEN_THREADS="1")
        user = {}
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("wuerstchen")
                user = {"user": "wuerstchen", "group": "wuerstchen", "extra_groups": []}
            except KeyError:
                pass
        self.user = user.get("user", pwd.getpwuid(os.geteuid()).pw_name)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([f"{app}/bin/wuerstchen", "serve"], env=env, stdout=subprocess.PIPE, stderr=log, **user)
        log.close()
        line = self.process.stdout.readline().decode()
        m = re.match(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if not m:
            raise RuntimeError(f"{name} did not start: {line!r}; log {self.log_path}: {self.log_path.read_text()[-2000:]}")
        self.port = int(m.group(1))
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if request(self.port, "GET", "/readyz", timeout=5)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready after 30 s")

    def log(self):
        return self.log_path.read_text(errors="replace")

    def gauge(self, name):
        """A metric's value straight from this instance."""
        text = request(self.port, "GET", "/metrics", timeout=5)[2].decode()
        m = re.search(rf"^{name} ([0-9.eE+-]+)$", text, re.M)
        return float(m.group(1)) if m else None

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def request(port, method, path, body=None, headers=None, timeout=60):
    """(status, headers with lower-case names, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        h = dict(headers or {})
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def start_nginx(nginx, workdir, upstreams):
    """deploy/nginx/wuerstchen.conf with three replacements, inside a main config that needs no root paths."""
    text = (ROOT / "deploy/nginx/wuerstchen.conf").read_text()
    port = free_port()
    replaced = {}

    def sub(pattern, repl, text, what):
        new, n = re.subn(pattern, repl, text, flags=re.M)
        if n != 1:
            raise RuntimeError(f"deploy/nginx/wuerstchen.conf: expected one {what}, found {n}")
        replaced[what] = repl
        return new

    text = sub(r"^(\s*)server wuerstchen:8080 (.*)$",
               "\n".join(rf"\g<1>server 127.0.0.1:{p} \g<2>" for p in upstreams), text, "upstream server line")
    text = sub(r"^(\s*)listen 8080;$", rf"\g<1>listen 127.0.0.1:{port};", text, "listen line")
    text = sub(r"^(\s*)access_log /var/log/nginx/access.log wuerstchen;$", rf"\g<1>access_log {workdir}/access.log wuerstchen;",
               text, "access_log line")
    (Path(workdir) / "wuerstchen.conf").write_text(text)
    main = Path(workdir) / "nginx.conf"
    temp = " ".join(f"{kind}_temp_path {workdir}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    main.write_text(f"""worker_processes 2;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log info;
events {{ worker_connections 512; }}
http {{
    {temp}
    include {workdir}/wuerstchen.conf;
}}
""")
    test = subprocess.run([nginx, "-t", "-p", workdir, "-c", str(main)], capture_output=True, text=True)
    print("  " + test.stderr.strip().replace("\n", "\n  "))
    if test.returncode != 0:
        raise RuntimeError("nginx -t rejected the config")
    process = subprocess.Popen([nginx, "-p", workdir, "-c", str(main), "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=open(Path(workdir) / "nginx.stderr", "wb"))
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            request(port, "GET", "/healthz", timeout=2)
            return process, port
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nginx did not answer on {port}: {(Path(workdir) / 'error.log').read_text()[-2000:]}")


class Outcome:
    """How one request under load ended: an image, a clear error, or lost (anything else)."""

    def __init__(self, mode, request_id):
        self.mode, self.request_id = mode, request_id
        self.kind, self.detail, self.status = "lost", "no answer", None

    def __repr__(self):
        return f"{self.request_id} {self.mode}: {self.kind} ({self.status}, {self.detail})"


def run_one(port, mode, request_id, payload, outcome, timeout=90):
    """One image request through nginx, classified. A clear error is an HTTP error status with the JSON
    error body, an SSE `error` event, or a transport error the client sees (connection reset, chunked
    body ended without its last chunk). Lost: a 200 whose image is missing or invalid without any error,
    a wrong X-Request-Id, or no answer."""
    accept = {"png": "image/png", "json": "application/json", "sse": "text/event-stream"}[mode]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/v1/images", body=json.dumps(payload).encode(),
                     headers={"Content-Type": "application/json", "Accept": accept, "X-Request-Id": request_id})
        r = conn.getresponse()
        outcome.status = r.status
        if r.getheader("X-Request-Id") != request_id:
            outcome.detail = f"X-Request-Id {r.getheader('X-Request-Id')!r}"
            return
        if r.status != 200:
            body = json.loads(r.read())
            if body.get("error", {}).get("message"):
                outcome.kind, outcome.detail = "error", f"{r.status} {body['error'].get('code')}: {body['error']['message']}"
            else:
                outcome.detail = f"{r.status} without a JSON error: {body!r}"
            return
        if mode == "png":
            size = png_size(r.read())
        elif mode == "json":
            size = png_size(base64.b64decode(json.loads(r.read())["data"][0]["b64_json"]))
        else:
            events = read_events(r)
            names = [e[1] for e in events]
            if "error" in names:
                outcome.kind, outcome.detail = "error", f"SSE error event {events[names.index('error')][2]}"
                return
            if names[-1:] != ["done"] or "image" not in names:
                outcome.detail = f"SSE stream ended cleanly without image/done: {names[-3:]}"
                return
            size = png_size(base64.b64decode(json.loads(events[names.index("image")][2])["b64_json"]))
        if size != (payload["width"], payload["height"]):
            outcome.detail = f"PNG {size}"
            return
        outcome.kind, outcome.detail = "image", f"{size[0]}x{size[1]}"
    except (http.client.IncompleteRead, ConnectionError, http.client.RemoteDisconnected) as e:
        outcome.kind, outcome.detail = "error", f"transport: {type(e).__name__}"
    except socket.timeout:
        outcome.detail = f"no answer within {timeout} s"
    except ValueError as e:
        outcome.detail = f"invalid answer: {e}"
    finally:
        conn.close()


def read_events(response):
    """SSE events as (arrival time, event, data), read as they arrive. Through read1, which raises
    IncompleteRead when the chunked body ends without its last chunk (readline would hide that)."""
    events, name, data, buffer = [], None, None, b""
    while True:
        chunk = response.read1(65536)
        if not chunk:
            return events
        buffer += chunk
        now = time.monotonic()
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line = line.decode()
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and name:
                events.append((now, name, data))
                name = data = None


def load(port, count, tag, timeout=90):
    """`count` concurrent image requests (png, json and sse mixed) in threads, each given `timeout` seconds to
    answer; returns (outcomes, threads)."""
    modes = ["png", "png", "json", "sse"]
    outcomes, threads = [], []
    for i in range(count):
        mode = modes[i % len(modes)]
        outcome = Outcome(mode, f"e2e-{tag}-{i}")
        payload = dict(LONG, prompt=f"load {tag} {i}", seed=i)
        t = threading.Thread(target=run_one, args=(port, mode, outcome.request_id, payload, outcome, timeout), daemon=True)
        outcomes.append(outcome)
        threads.append(t)
        t.start()
    return outcomes, threads


def wait_busy(instance, seconds=20):
    """Until the instance has image requests in flight (the gauge counts the /metrics request too)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        in_flight = instance.gauge("wuerstchen_http_requests_in_flight") or 0
        if in_flight >= 2:
            return in_flight - 1
        time.sleep(0.05)
    raise AssertionError(f"{instance.name} never had a request in flight")


def join(threads, seconds=120):
    deadline = time.time() + seconds
    for t in threads:
        t.join(max(0.0, deadline - time.time()))
    if any(t.is_alive() for t in threads):
        raise AssertionError(f"requests still running after {seconds} s")


class E2E:
    def __init__(self, args, workdir):
        self.args, self.workdir = args, workdir
        self.a = Instance(args.app, "a", workdir)
        self.b = Instance(args.app, "b", workdir)
        print(f"  instances a :{self.a.port} b :{self.b.port} as user {self.a.user}")
        self.nginx, self.port = start_nginx(args.nginx, workdir, [self.a.port, self.b.port])
        print(f"  nginx :{self.port}")

    def access_log(self):
        """nginx's access log (log_format wuerstchen)."""
        return (Path(self.workdir) / "access.log").read_text()

    def close(self):
        for instance in (self.a, self.b):
            instance.stop()
        self.nginx.terminate()
        try:
            self.nginx.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.nginx.kill()

    # MARK: - checks, in order

    def healthcheck_script(self):
        """The image's HEALTHCHECK against a live instance (0) and a closed port (not 0)."""
        ok = subprocess.run([f"{self.args.app}/bin/healthcheck", str(self.a.port)], capture_output=True, text=True)
        assert ok.returncode == 0, f"healthcheck on a live instance exited {ok.returncode}: {ok.stderr}"
        bad = subprocess.run([f"{self.args.app}/bin/healthcheck", str(free_port())], capture_output=True, text=True)
        assert bad.returncode != 0, "healthcheck passed on a closed port"

    def health_and_request_id(self):
        status, headers, body = request(self.port, "GET", "/healthz", headers={"X-Request-Id": "e2e-health-1"})
        assert status == 200 and json.loads(body) == {"status": "ok"}, f"/healthz {status} {body!r}"
        assert headers.get("x-request-id") == "e2e-health-1", f"X-Request-Id {headers.get('x-request-id')!r}"
        status, headers, _ = request(self.port, "GET", "/readyz")
        assert status == 200, f"/readyz {status}"
        generated = headers.get("x-request-id", "")
        assert re.fullmatch(r"[0-9a-f]{32}", generated), f"nginx did not generate a request id: {generated!r}"
        # Both ends logged the generated id: nginx passed it on.
        time.sleep(0.2)
        assert any(f"request_id={generated}" in i.log() for i in (self.a, self.b)), "the instance did not log nginx's request id"
        assert f"request_id={generated}" in self.access_log(), "nginx did not log the request id"
        status, headers, _ = request(self.port, "GET", "/healthz", headers={"X-Request-Id": "bad id with spaces"})
        assert re.fullmatch(r"[0-9a-f]{32}", headers.get("x-request-id", "")), "an invalid client id was passed on"

    def png_streams(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", "/v1/images", body=json.dumps({"prompt": "a cat", "width": 512, "height": 512, "seed": 7}),
                     headers={"Content-Type": "application/json", "X-Request-Id": "e2e-png-1"})
        r = conn.getresponse()
        body = r.read()
        conn.close()
        assert r.status == 200, f"status {r.status}: {body[:300]!r}"
        assert r.getheader("Content-Type") == "image/png", r.getheader("Content-Type")
        assert r.getheader("Transfer-Encoding") == "chunked" and r.getheader("Content-Length") is None, \
            f"not streamed: Transfer-Encoding {r.getheader('Transfer-Encoding')}, Content-Length {r.getheader('Content-Length')}"
        assert r.getheader("X-Seed") == "7" and r.getheader("X-Request-Id") == "e2e-png-1", dict(r.getheaders())
        assert png_size(body) == (512, 512)
        print(f"  {len(body)} bytes, chunked")

    def sse_is_incremental(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        started = time.monotonic()
        conn.request("POST", "/v1/images", body=json.dumps(dict(LONG, prompt="a cat", seed=1)),
                     headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Content-Type") == "text/event-stream", f"{r.status} {r.getheader('Content-Type')}"
        events = read_events(r)
        conn.close()
        names = [e[1] for e in events]
        # The scheduler sends `queued` before the request can be admitted: it is always first.
        assert names[0] == "queued" and names[-2:] == ["image", "done"], f"events {names[:3]} ... {names[-3:]}"
        progress = [e[0] for e in events if e[1] == "progress"]
        assert len(progress) == LONG["prior_steps"] + LONG["decoder_steps"], f"{len(progress)} progress events"
        total = events[-1][0] - started
        spread = progress[-1] - progress[0]
        # Buffered by a proxy, every event would arrive in the last moment: spread near 0.
        assert spread > 0.3 * total and spread > 0.2, f"progress events arrived within {spread:.3f} s of a {total:.3f} s request"
        assert png_size(base64.b64decode(json.loads(events[-2][2])["b64_json"])) == (512, 512)
        print(f"  {len(events)} events; progress spread over {spread:.2f} s of {total:.2f} s")

    def metrics_scrape(self):
        status, headers, body = request(self.port, "GET", "/metrics")
        text = body.decode()
        assert status == 200 and headers.get("content-type", "").startswith("text/plain"), f"{status} {headers.get('content-type')}"
        hpa = (ROOT / "deploy/kubernetes/hpa.yaml").read_text()
        metric = re.search(r"metric:\n\s+name: (\S+)", hpa).group(1)
        assert re.search(rf"^# TYPE {metric} gauge$", text, re.M), f"the HPA's metric {metric} is not a gauge in /metrics"
        for name in ("wuerstchen_http_requests_total", "wuerstchen_images_generated_total", "process_resident_memory_bytes"):
            assert re.search(rf"^{name}", text, re.M), f"{name} missing"

    def openai_sdk(self):
        python = os.environ.get("WUERSTCHEN_CI_PYTHON")
        assert python, "WUERSTCHEN_CI_PYTHON is not set (scripts/ci/openai_venv.sh makes it)"
        result = subprocess.run([python, str(ROOT / "scripts/ci/openai_check.py"), f"http://127.0.0.1:{self.port}/v1", "--size", "256x256"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"openai_check: {result.stdout} {result.stderr}"
        print("  " + result.stdout.strip())

    def nginx_errors_are_json(self):
        status, headers, body = request(self.port, "POST", "/v1/images", body={"prompt": "x" * (2 << 20)})
        assert status == 413, f"status {status}"
        assert json.loads(body)["error"]["code"] == "body_too_large", body[:200]
        assert re.fullmatch(r"[0-9a-f]{32}", headers.get("x-request-id", "")), "nginx's own error has no X-Request-Id"

    def sigkill_under_load(self):
        outcomes, threads = load(self.port, 8, "kill")
        try:
            busy = wait_busy(self.a)
            os.kill(self.a.process.pid, signal.SIGKILL)
            self.a.process.wait()
            join(threads)
        finally:
            self.a.stop()
            self.a = Instance(self.args.app, "a", self.workdir, port=self.a.port)
        summary = self.summarise(outcomes)
        print(f"  a had {busy:.0f} request(s) in flight when killed; {summary}")
        lost = [o for o in outcomes if o.kind == "lost"]
        assert not lost, f"lost: {lost}"
        assert sum(o.kind == "image" for o in outcomes) >= len(outcomes) // 2, f"too few images: {outcomes}"
        retried = len(re.findall(r"request_id=e2e-kill-\d+ upstream=127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+ upstream_status=502, 200",
                                 self.access_log()))
        print(f"  {retried} request(s) retried on b by nginx after a died")

    def sigterm_drains(self):
        outcomes, threads = load(self.port, 6, "term")
        busy = wait_busy(self.b)
        self.b.process.send_signal(signal.SIGTERM)
        term_at = time.time()
        # New work while b drains: nginx must send it to a (b refuses connections, or answers 503 on a
        # kept-alive one, and nginx retries).
        time.sleep(0.3)
        during, more = load(self.port, 4, "during")
        outcomes += during
        join(threads + more)
        code = self.b.process.wait(timeout=max(1.0, term_at + 40 - time.time()))
        stamps = re.findall(r"^(\S+) notice .*(?:received SIGTERM|drained; stopping)", self.b.log(), re.M)
        print(f"  b had {busy:.0f} request(s) in flight at SIGTERM; {self.summarise(outcomes)}; b exited {code}, "
              f"drain logged from {stamps[0][11:19] if stamps else '?'} to {stamps[-1][11:19] if len(stamps) > 1 else '?'}")
        failed = [o for o in outcomes if o.kind != "image"]
        assert not failed, f"not every request got its image: {failed}"
        assert code == 0, f"b exited {code}"
        log = self.b.log()
        after = log[log.index("received SIGTERM"):] if "received SIGTERM" in log else ""
        finished = re.findall(r"request_id=e2e-term-\d+ method=POST path=/v1/images status=200", after)
        assert after and finished, "b finished no request after SIGTERM: nothing was drained"
        print(f"  b finished {len(finished)} request(s) after SIGTERM")

    def summarise(self, outcomes):
        counts = {k: sum(o.kind == k for o in outcomes) for k in ("image", "error", "lost")}
        errors = sorted({o.detail for o in outcomes if o.kind == "error"})
        return f"{len(outcomes)} requests: {counts['image']} images, {counts['error']} clear errors {errors}, {counts['lost']} lost"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--app", required=True, help="staged image contents (scripts/container/build.sh DEST)")
    parser.add_argument("--nginx", default="nginx")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="wuerstchen-e2e-")
    os.chmod(workdir, 0o755)
    started = time.time()
    passed = failed = 0
    e2e = None
    try:
        e2e = E2E(args, workdir)
        for name in ("healthcheck_script", "health_and_request_id", "png_streams", "sse_is_incremental", "metrics_scrape",
                     "openai_sdk", "nginx_errors_are_json", "sigkill_under_load", "sigterm_drains"):
            try:
                getattr(e2e, name)()
                print(f"ok {name}")
                passed += 1
            except Exception as e:  # noqa: BLE001 - every failure is reported by name
                print(f"FAIL {name}: {type(e).__name__}: {e}")
                failed += 1
            sys.stdout.flush()
    except Exception as e:  # noqa: BLE001
        print(f"FAIL setup: {type(e).__name__}: {e}")
        failed += 1
    finally:
        if e2e:
            e2e.close()
    if failed:
        for name in ("a.log", "b.log", "error.log", "access.log"):
            path = Path(workdir) / name
            if path.exists():
                print(f"--- {path} (last 3000 characters)\n{path.read_text(errors='replace')[-3000:]}")
    print(f"  {time.time() - started:.0f} s; logs in {workdir}")
    print(f"e2e_nginx: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
