#!/usr/bin/env python3
"""End to end against the image podman built from the Dockerfile (issue 14). Run by scripts/ci/container_e2e.sh,
which installs podman, makes the base images, builds the image and sets CONTAINERS_CONF (runtime runc, ulimits).

    python3 scripts/ci/container_e2e.py --image localhost/wuerstchen:latest
    python3 scripts/ci/container_e2e.py --cleanup        # remove what a run left (also done before and after a run)

1. The image alone, as `docker run` would start it: --read-only, the image's user, config and entrypoint, port 8080
   published on loopback. Checks: the image kept its HEALTHCHECK (Docker format) and `podman healthcheck run` passes;
   PID 1 is the server, as uid 10001; the root is read-only; /readyz, a PNG that decodes, /metrics and the openai SDK
   through the published port; `podman stop` drains it and it exits 0. Prints start-to-ready and the image's layers.
2. Two replicas behind the nginx image with deploy/nginx/wuerstchen.conf, unchanged, mounted as conf.d/default.conf
   as deploy/docker-compose.yml does; the replicas share the network alias `wuerstchen`, which nginx resolves to both.
   The checks of scripts/ci/e2e_nginx.py through nginx (request ids, PNG streaming, SSE, /metrics, the openai SDK,
   nginx's JSON errors); `podman stop` of one replica under load: its requests finish (drain), later ones go to the
   other; `podman kill` of one under load: every request ends with an image or a clear error, none hangs or is lost.
3. `podman kube play` of deploy/kubernetes/ (configmap.yaml, deployment.yaml, service.yaml; the claim's volume is
   made here and filled with the demo model in the layout the ConfigMap names). podman 4.3 publishes every
   containerPort on the host, so deployment.yaml is played with two changes (kube_manifest): a free hostPort and
   `replicas: 1`. The pod turns ready and serves a PNG, through the host port and its own address, with the
   ConfigMap's server.json; prints which of the Deployment's fields podman applied and which it did not.
Last line: `container_e2e: N passed, M failed`; exit 1 when any check failed. Every wait has a timeout.
"""
import argparse
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e_nginx  # noqa: E402
from e2e_nginx import join, load, request, wait_busy  # noqa: E402
from png_check import png_size  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
LABEL = "wuerstchen-e2e"
NETWORK = "wuerstchen-e2e"
NGINX_IMAGE = "docker.io/library/nginx:stable-bookworm"
KUBE_FILES = ("configmap.yaml", "deployment.yaml", "service.yaml")
# deployment.yaml's names: podman makes `replicas` pods named after the Deployment (wuerstchen-pod-0, -1, ...),
# their containers after the pod and the container (wuerstchen-pod-0-wuerstchen).
KUBE_POD = re.compile(r"^wuerstchen-pod-\d+$")
KUBE_VOLUME = "wuerstchen-models"
KUBE_CONFIG_VOLUME = "wuerstchen-config"  # configmap.yaml's name
# drain_seconds of the image's server.json (30) plus slack, as deploy/docker-compose.yml's stop_grace_period.
STOP_SECONDS = 40
# The replicas drain for up to 120 s (WUERSTCHEN_DRAIN_SECONDS): on a shared 2-core machine (load average 16 seen)
# a replica's queue of e2e_nginx's LONG requests outlasts the image's 30 s, and the drain deadline then cancels the
# last one (by design: the client sees the chunked body end early), which is not what the drain check is about.
REPLICA_DRAIN_SECONDS = 120


def podman(*args, check=True, timeout=120):
    """podman with CONTAINERS_CONF from the environment; stdout, or an error naming the command."""
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} exited {result.returncode}: {result.stderr.strip()[-1500:]}")
    return result.stdout


def inspect(name, template):
    return podman("inspect", "--format", template, name).strip()


def logs(name):
    """A container's stdout and stderr, interleaved as podman stored them."""
    result = subprocess.run(["podman", "logs", name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return result.stdout.decode(errors="replace")


def published_port(name):
    """The loopback port podman published the container's 8080 on."""
    out = podman("port", name, "8080/tcp").strip()
    m = re.fullmatch(r"127\.0\.0\.1:(\d+)", out.splitlines()[0] if out else "")
    if not m:
        raise RuntimeError(f"{name}: 8080/tcp is not published on 127.0.0.1: {out!r}")
    return int(m.group(1))


def wait_ready(host, port, name, seconds=90):
    """Until /readyz answers 200; the time that took."""
    started = time.monotonic()
    deadline = started + seconds
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status = http_status(host, port, "/readyz")
            if status == 200:
                return time.monotonic() - started
            last = f"/readyz {status}"
        except OSError as e:
            last = f"{type(e).__name__}: {e}"
        if inspect(name, "{{.State.Status}}") not in ("running", "created", "configured"):
            raise RuntimeError(f"{name} is {inspect(name, '{{.State.Status}}')} before it was ready: {logs(name)[-2000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"{name} not ready on {host}:{port} after {seconds} s ({last}): {logs(name)[-2000:]}")


def http_status(host, port, path):
    import http.client
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def generate_png(host, port, size=256, request_id="e2e-container-png"):
    """One PNG from POST /v1/images; checks that it decodes to the size asked for."""
    import http.client
    conn = http.client.HTTPConnection(host, port, timeout=120)
    try:
        conn.request("POST", "/v1/images", body=json.dumps({"prompt": "a red circle on a blue background", "width": size,
                                                            "height": size, "seed": 3}),
                     headers={"Content-Type": "application/json", "X-Request-Id": request_id})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 200, f"POST /v1/images {response.status}: {body[:300]!r}"
    assert response.getheader("Content-Type") == "image/png", response.getheader("Content-Type")
    assert png_size(body) == (size, size), f"PNG {png_size(body)}"
    return len(body)


def pid1_status(name):
    """(uid line, command line) of PID 1 inside the container."""
    status = podman("exec", name, "cat", "/proc/1/status")
    cmdline = podman("exec", name, "cat", "/proc/1/cmdline").replace("\0", " ").strip()
    uid = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    return uid, cmdline


def openai_sdk(port):
    python = os.environ.get("WUERSTCHEN_CI_PYTHON")
    assert python, "WUERSTCHEN_CI_PYTHON is not set (scripts/ci/openai_venv.sh makes it)"
    result = subprocess.run([python, str(ROOT / "scripts/ci/openai_check.py"), f"http://127.0.0.1:{port}/v1", "--size", "256x256"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"openai_check: {result.stdout} {result.stderr}"
    return result.stdout.strip()


def run_container(image, name, *extra):
    """`podman run -d` as a user would: the image's config, 8080 on a loopback port, the root read-only as Docker
    makes it (without the tmpfs podman adds on /tmp, /var/tmp and /run by default)."""
    return podman("run", "-d", "--name", name, "--label", f"{LABEL}=1", "--read-only", "--read-only-tmpfs=false",
                  "-p", "127.0.0.1::8080",
                  *extra, image).strip()


def stop(name, seconds=STOP_SECONDS):
    """`podman stop -t`, bounded; the exit code the container ended with."""
    podman("stop", "-t", str(seconds), name, timeout=seconds + 30)
    return int(inspect(name, "{{.State.ExitCode}}"))


def exists(kind, name):
    return subprocess.run(["podman", kind, "exists", name], capture_output=True, timeout=60).returncode == 0


def kube_pods():
    return sorted(p["Name"] for p in json.loads(podman("pod", "ps", "--format", "json", check=False) or "[]")
                  if KUBE_POD.match(p["Name"]))


def cleanup():
    """Everything a run made: labelled containers, the kube pod, the network, the volume. Safe to repeat."""
    ids = podman("ps", "-aq", "--filter", f"label={LABEL}=1", check=False).split()
    if ids:
        # -v: the anonymous volume each container gets for the image's VOLUME /models.
        podman("rm", "-f", "-v", "-t", "0", *ids, check=False)
    pods = kube_pods()
    if pods:
        podman("pod", "rm", "-f", "-t", "0", *pods, check=False)
    # kube play keeps the ConfigMap as a volume named after it and reuses it on the next play: remove it, so that
    # every run plays the ConfigMap as it is now.
    if exists("volume", KUBE_CONFIG_VOLUME):
        podman("volume", "rm", "-f", KUBE_CONFIG_VOLUME, check=False)
    if exists("network", NETWORK):
        podman("network", "rm", "-f", NETWORK, check=False)
    if exists("volume", KUBE_VOLUME):
        labels = podman("volume", "inspect", "--format", "{{json .Labels}}", KUBE_VOLUME, check=False)
        if f'"{LABEL}"' in labels:
            podman("volume", "rm", "-f", KUBE_VOLUME, check=False)
        else:
            print(f"container_e2e: volume {KUBE_VOLUME} exists and was not made by this test; left alone", file=sys.stderr)


class Report:
    """Runs named checks, prints `ok NAME` or `FAIL NAME: reason`, counts them."""

    def __init__(self):
        self.passed = self.failed = 0

    def run(self, name, fn):
        try:
            fn()
            print(f"ok {name}")
            self.passed += 1
            return True
        except Exception as e:  # noqa: BLE001 - every failure is reported by name
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            self.failed += 1
            return False
        finally:
            sys.stdout.flush()


# MARK: - 1. the image alone

class Single:
    NAME = "wuerstchen-e2e-single"

    def __init__(self, image):
        self.image = image
        started = time.monotonic()
        run_container(image, self.NAME)
        self.port = published_port(self.NAME)
        wait_ready("127.0.0.1", self.port, self.NAME)
        self.start_to_ready = time.monotonic() - started
        print(f"  podman run to /readyz 200: {self.start_to_ready:.1f} s (127.0.0.1:{self.port})")

    def image_layers(self):
        """The layers on top of the runtime base, with their sizes (the project's part of the image)."""
        runtime_base = "docker.io/library/debian:bookworm-slim"
        base = int(podman("image", "inspect", "--format", "{{.Size}}", runtime_base).strip())
        total = int(podman("image", "inspect", "--format", "{{.Size}}", self.image).strip())
        history = json.loads(podman("history", "--format", "json", self.image))
        ours = history[:len(history) - len(json.loads(podman("history", "--format", "json", runtime_base)))]
        for layer in ours:
            if layer.get("size", 0) > 0:
                print(f"    {layer['size'] / 1e6:7.1f} MB  {layer.get('CreatedBy', '')[:100]}")
        added = total - base
        print(f"  image {total / 1e6:.0f} MB = base {base / 1e6:.0f} MB + {added / 1e6:.0f} MB added by the Dockerfile")
        assert added < 200e6, f"the layers the Dockerfile adds weigh {added / 1e6:.0f} MB (limit 200 MB)"

    def healthcheck(self):
        config = json.loads(podman("image", "inspect", self.image))[0].get("Healthcheck")
        assert config and config.get("Test") == ["CMD", "/app/bin/healthcheck"], \
            f"the image has no HEALTHCHECK (built without --format docker?): {config}"
        result = subprocess.run(["podman", "healthcheck", "run", self.NAME], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"podman healthcheck run exited {result.returncode}: {result.stdout} {result.stderr}"
        health = json.loads(podman("inspect", self.NAME))[0]["State"].get("Health") or {}
        assert health.get("Status") == "healthy", f"after podman healthcheck run the container is {health.get('Status')!r}"
        # The same script against a port nothing listens on must fail.
        closed = subprocess.run(["podman", "exec", self.NAME, "/app/bin/healthcheck", "9"], capture_output=True, text=True, timeout=30)
        assert closed.returncode != 0, "the healthcheck passed on a port nothing listens on"
        print(f"  HEALTHCHECK {' '.join(config['Test'][1:])} kept (Docker format); podman healthcheck run: {health.get('Status')}")

    def user_and_root(self):
        assert inspect(self.image, "{{.Config.User}}") == "10001:10001", f"image USER {inspect(self.image, '{{.Config.User}}')}"
        uid, cmdline = pid1_status(self.NAME)
        assert uid[:2] == ["10001", "10001"], f"PID 1 runs as uid {uid}"
        assert cmdline == "/app/bin/wuerstchen serve", f"PID 1 is {cmdline!r}"
        assert inspect(self.NAME, "{{.HostConfig.ReadonlyRootfs}}") == "true", "not started with a read-only root"
        touch = subprocess.run(["podman", "exec", self.NAME, "touch", "/app/written"], capture_output=True, text=True, timeout=30)
        assert touch.returncode != 0 and "Read-only file system" in touch.stderr, f"/app is writable: {touch.stderr}"
        env = inspect(self.NAME, "{{json .Config.Env}}")
        assert "WUERSTCHEN_CONFIG=/app/config/server.json" in env, f"WUERSTCHEN_CONFIG missing: {env}"
        assert "listening on http://0.0.0.0:8080" in logs(self.NAME), "the image's server.json does not listen on 0.0.0.0:8080"
        print(f"  PID 1 {cmdline!r} uid {uid[0]}, read-only root, config /app/config/server.json")

    def endpoints(self):
        assert http_status("127.0.0.1", self.port, "/readyz") == 200
        size = generate_png("127.0.0.1", self.port)
        status, headers, body = request(self.port, "GET", "/metrics")
        assert status == 200 and headers.get("content-type", "").startswith("text/plain"), f"/metrics {status}"
        m = re.search(r"^wuerstchen_images_generated_total(?:\{[^}]*\})? ([0-9.eE+]+)$", body.decode(), re.M)
        assert m and float(m.group(1)) >= 1, "/metrics does not count the image just made"
        print(f"  /readyz 200, a 256x256 PNG of {size} bytes, /metrics counts it")

    def openai(self):
        print("  " + openai_sdk(self.port))

    def stop_drains(self):
        code = stop(self.NAME)
        text = logs(self.NAME)
        assert code == 0, f"exited {code} after podman stop: {text[-1500:]}"
        assert "received SIGTERM" in text and "drained; stopping" in text, f"no drain logged: {text[-1500:]}"


# MARK: - 2. two replicas behind the nginx image

class Replica:
    """One container of the service, reachable through nginx by its network alias and directly on loopback."""

    gauge = e2e_nginx.Instance.gauge

    def __init__(self, image, name, ip, mac):
        self.name, self.ip = name, ip
        # Threads 1 each: two replicas share the machine, as deploy/docker-compose.yml's WUERSTCHEN_THREADS says.
        # A fixed address and MAC: nginx resolved the alias once at its start, and a replica started again with
        # a new MAC is unreachable from nginx until its ARP entry goes stale (5-9 s of connect timeouts, seen here).
        run_container(image, name, "--network", NETWORK, "--ip", ip, "--mac-address", mac, "--network-alias", "wuerstchen",
                      "-e", "WUERSTCHEN_THREADS=1", "-e", f"WUERSTCHEN_DRAIN_SECONDS={REPLICA_DRAIN_SECONDS}")
        self.port = published_port(name)
        wait_ready("127.0.0.1", self.port, name)

    def log(self):
        return logs(self.name)

    def restart(self):
        started = time.monotonic()
        podman("start", self.name)
        self.port = published_port(self.name)
        wait_ready("127.0.0.1", self.port, self.name)
        print(f"  {self.name} started again and ready in {time.monotonic() - started:.1f} s")


class BehindNginx(e2e_nginx.E2E):
    """e2e_nginx's checks through the nginx image, against containers instead of processes."""

    NGINX = "wuerstchen-e2e-nginx"

    def __init__(self, image):
        self.image = image
        podman("network", "create", "--label", f"{LABEL}=1", NETWORK)
        subnet = ipaddress.ip_network(inspect(NETWORK, "{{range .Subnets}}{{.Subnet}}{{end}}"))
        # Locally administered MACs (02:...), one per replica.
        self.a = Replica(image, "wuerstchen-e2e-a", str(subnet[10]), "02:77:75:65:00:0a")
        self.b = Replica(image, "wuerstchen-e2e-b", str(subnet[11]), "02:77:75:65:00:0b")
        conf = ROOT / "deploy/nginx/wuerstchen.conf"
        podman("run", "-d", "--name", self.NGINX, "--label", f"{LABEL}=1", "--network", NETWORK, "-p", "127.0.0.1::8080",
               "-v", f"{conf}:/etc/nginx/conf.d/default.conf:ro", NGINX_IMAGE)
        self.port = published_port(self.NGINX)
        deadline = time.monotonic() + 30
        while True:
            try:
                if http_status("127.0.0.1", self.port, "/healthz") == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not answer on 127.0.0.1:{self.port}: {logs(self.NGINX)[-2000:]}")
            time.sleep(0.2)
        print(f"  replicas a {self.a.ip} (:{self.a.port}) b {self.b.ip} (:{self.b.port}); nginx :{self.port}")

    def access_log(self):
        return logs(self.NGINX)

    def close(self):
        pass  # cleanup() removes the containers and the network

    def both_replicas_resolved(self):
        for _ in range(8):
            request(self.port, "GET", "/healthz")
        upstreams = set(re.findall(r"upstream=([\d.]+):8080 ", self.access_log()))
        assert {self.a.ip, self.b.ip} <= upstreams, f"nginx sent requests only to {upstreams}, not to both replicas"

    def podman_stop_drains(self):
        """`podman stop` of b under load: b finishes what it has, exits 0; what comes meanwhile goes to a."""
        grace = REPLICA_DRAIN_SECONDS + 10
        # Four requests spread over both, then two while b drains, all on a then: on the shared machine one of
        # e2e_nginx's LONG requests took up to 50 s on a 1-thread replica, so each gets 300 s to answer.
        outcomes, threads = load(self.port, 4, "term", timeout=300)
        try:
            busy = wait_busy(self.b)
            result = {}
            stopper = threading.Thread(target=lambda: result.setdefault("code", stop(self.b.name, grace)), daemon=True)
            stopper.start()
            # New work only once b drains: `podman stop` itself takes a second or more to deliver SIGTERM under
            # load, and what b accepted before is b's to finish.
            deadline = time.monotonic() + 60
            while "received SIGTERM" not in self.b.log():
                assert time.monotonic() < deadline, f"{self.b.name} logged no SIGTERM within 60 s of podman stop"
                time.sleep(0.1)
            during, more = load(self.port, 2, "during", timeout=300)
            outcomes += during
            join(threads + more, 360)
            stopper.join(grace + 30)
            assert not stopper.is_alive(), f"podman stop -t {grace} of {self.b.name} still running after {grace + 30} s"
            log = self.b.log()
        finally:
            join(threads, 360)
            self.b.restart()
        print(f"  b had {busy:.0f} request(s) in flight at podman stop; {self.summarise(outcomes)}; b exited {result.get('code')}")
        failed = [o for o in outcomes if o.kind != "image"]
        assert not failed, f"not every request got its image: {failed}"
        assert result.get("code") == 0, f"b exited {result.get('code')}"
        after = log[log.rindex("received SIGTERM"):] if "received SIGTERM" in log else ""
        finished = re.findall(r"request_id=e2e-term-\d+ method=POST path=/v1/images status=200", after)
        assert after and finished, "b finished no request after SIGTERM: nothing was drained"
        during_on_a = [i for i in range(2) if f"request_id=e2e-during-{i} " in self.a.log()]
        print(f"  b finished {len(finished)} request(s) after SIGTERM; {len(during_on_a)} of 2 later ones ran on a")
        assert len(during_on_a) == 2, f"requests sent while b drained ran elsewhere than a: {2 - len(during_on_a)}"

    def podman_kill_under_load(self):
        """`podman kill` of a under load: every request ends with an image or a clear error; none hangs or is lost."""
        outcomes, threads = load(self.port, 8, "kill")
        busy = wait_busy(self.a)
        podman("kill", self.a.name)
        join(threads, 240)
        print(f"  a had {busy:.0f} request(s) in flight when killed; {self.summarise(outcomes)}")
        lost = [o for o in outcomes if o.kind == "lost"]
        assert not lost, f"lost: {lost}"
        assert sum(o.kind == "image" for o in outcomes) >= len(outcomes) // 2, f"too few images: {outcomes}"
        retried = len(re.findall(r"request_id=e2e-kill-\d+ upstream=[\d.]+:8080, [\d.]+:8080 upstream_status=502, 200",
                                 self.access_log()))
        print(f"  {retried} request(s) retried on b by nginx after a died")


# MARK: - 3. podman kube play of deploy/kubernetes/

def kube_manifest(name, host_port):
    """deploy/kubernetes/NAME as podman 4.3 can play it on one host. deployment.yaml gets two changes, each checked to
    apply exactly once: podman 4.3 publishes every containerPort on the host (0.0.0.0:8080, what a cluster never
    does), so the pod gets an explicit free hostPort, and `replicas: 2` becomes 1 (two pods would both bind it)."""
    text = (ROOT / "deploy/kubernetes" / name).read_text()
    if name != "deployment.yaml":
        return text
    for pattern, repl in ((r"^(\s+)replicas: 2$", r"\g<1>replicas: 1"),
                          (r"^(\s+)(- name: http\n\s+)containerPort: 8080$", rf"\g<1>\g<2>containerPort: 8080\n\g<1>  hostPort: {host_port}")):
        text, n = re.subn(pattern, repl, text, flags=re.M)
        if n != 1:
            raise RuntimeError(f"deploy/kubernetes/deployment.yaml: expected one match of {pattern!r}, found {n}")
    return text


class KubePlay:
    def __init__(self, image, workdir):
        self.image = image
        # The claim's volume, as a cluster would bind it: the demo model in the folders the ConfigMap names.
        podman("volume", "create", "--label", f"{LABEL}=1", KUBE_VOLUME)
        bundle = "/app/bin/wuerstchen_Wuerstchen.resources/Resources/DemoModel"
        podman("run", "--rm", "--label", f"{LABEL}=1", "--user", "0", "-v", f"{KUBE_VOLUME}:/models", "--entrypoint", "sh",
               image, "-c", f"cp -R {bundle}/prior /models/wuerstchen-prior && cp -R {bundle}/decoder /models/wuerstchen"
               " && chmod -R a+rX /models")
        self.host_port = e2e_nginx.free_port()
        self.manifest = Path(workdir) / "kube.yaml"
        self.manifest.write_text("\n---\n".join(kube_manifest(f, self.host_port) for f in KUBE_FILES))
        started = time.monotonic()
        podman("kube", "play", str(self.manifest), timeout=300)
        self.pods = []  # (pod, container, address)
        for pod in kube_pods():
            containers = [c["Names"][0] for c in json.loads(podman("ps", "-a", "--pod", "--format", "json"))
                          if c.get("PodName") == pod and not c.get("IsInfra")]
            assert len(containers) == 1, f"expected one container in pod {pod}: {containers}"
            info = json.loads(podman("pod", "inspect", pod))
            infra = (info[0] if isinstance(info, list) else info)["InfraContainerID"]
            ip = inspect(infra, "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
            assert ip, f"pod {pod} has no IP address"
            self.pods.append((pod, containers[0], ip))
        assert self.pods, f"podman kube play made no pod named like {KUBE_POD.pattern}"
        assert len(self.pods) == 1, f"expected the one pod of replicas: 1, got {[p for p, _, _ in self.pods]}"
        wait_ready("127.0.0.1", self.host_port, self.pods[0][1], seconds=120)
        self.start_to_ready = time.monotonic() - started
        pod, _, ip = self.pods[0]
        print(f"  podman kube play to /readyz 200: {self.start_to_ready:.1f} s; {pod} at {ip}, published on host port {self.host_port}")

    @property
    def containers(self):
        return [container for _, container, _ in self.pods]

    def serves(self):
        pod, container, ip = self.pods[0]
        size = generate_png("127.0.0.1", self.host_port, request_id="e2e-kube-png")
        assert generate_png(ip, 8080, size=128, request_id="e2e-kube-pod-address"), "the pod's own address does not serve"
        text = logs(container)
        assert "/models/wuerstchen-prior" in text, f"{pod} did not log the ConfigMap's model paths: {text[-1500:]}"
        print(f"  {pod}: a 256x256 PNG of {size} bytes through the published port and one from {ip}:8080; "
              "models from the claim's volume")

    def fields(self):
        """What podman made of deployment.yaml: the fields it applied (checked) and those it ignores (printed)."""
        c = json.loads(podman("inspect", self.containers[0]))[0]
        host, config = c["HostConfig"], c["Config"]
        uid, cmdline = pid1_status(self.containers[0])
        assert uid[:2] == ["10001", "10001"], f"runAsUser/runAsGroup: PID 1 runs as {uid}"
        assert host.get("ReadonlyRootfs") is True, "readOnlyRootFilesystem not applied"
        assert cmdline.endswith("serve --config /etc/wuerstchen/server.json"), f"args: PID 1 is {cmdline!r}"
        applied = ["runAsUser/runAsGroup", "readOnlyRootFilesystem",
                   "args + the ConfigMap as a volume at /etc/wuerstchen", "the claim as the named volume"]
        ignored = []
        (applied if not c.get("EffectiveCaps") else ignored).append("capabilities.drop ALL")
        (applied if any("no-new-privileges" in o for o in host.get("SecurityOpt") or []) else ignored).append(
            "allowPrivilegeEscalation: false")
        (applied if host.get("Memory") == 14 << 30 else ignored).append(f"limits.memory (Memory {host.get('Memory')})")
        (applied if host.get("CpuQuota") else ignored).append(f"limits.cpu (CpuQuota {host.get('CpuQuota')})")
        probe = config.get("Healthcheck") or {}
        probe_run = subprocess.run(["podman", "healthcheck", "run", self.containers[0]], capture_output=True, text=True, timeout=30)
        if probe and probe_run.returncode == 0:
            applied.append("livenessProbe (as the container's healthcheck)")
        else:
            # podman 4.3 turns httpGet into `curl -f http://localhost:PORT/healthz` with a named port left at 0,
            # and the image has no curl: the probe fails (reported, podman's part).
            ignored.append(f"livenessProbe, made `{' '.join(probe.get('Test', [])[1:])}`, which fails "
                           f"({probe_run.stdout.strip() or probe_run.returncode}; on-failure {config.get('HealthcheckOnFailureAction')})")
        (applied if config.get("StopTimeout") == 330 else ignored).append(
            f"terminationGracePeriodSeconds (StopTimeout {config.get('StopTimeout')})")
        print("  applied: " + "; ".join(applied))
        print("  not applied: " + "; ".join(ignored + [
            "readinessProbe, lifecycle.preStop, strategy, resources.requests, the Service (no cluster address: "
            "each pod's own address serves)"]))


def dump_logs(names):
    """The last lines of each container's output, for a part that failed."""
    for name in names:
        if exists("container", name):
            print(f"--- podman logs {name} (last 3000 characters)\n{logs(name)[-3000:]}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", help="the image podman built from the Dockerfile")
    parser.add_argument("--cleanup", action="store_true", help="only remove what a run left")
    parser.add_argument("--part", action="append", choices=("single", "nginx", "kube"),
                        help="run only these parts (repeatable; default all)")
    args = parser.parse_args()
    if args.cleanup:
        cleanup()
        return 0
    if not args.image:
        parser.error("--image is required")
    parts = args.part or ["single", "nginx", "kube"]
    workdir = tempfile.mkdtemp(prefix="wuerstchen-container-e2e-")
    started = time.time()
    report = Report()
    made = {}

    def start(kind, *init):
        def run():
            made[kind] = kind_classes[kind](*init)
        return run
    kind_classes = {"single": Single, "nginx": BehindNginx, "kube": KubePlay}
    titles = {"single": "the image alone", "nginx": "two replicas behind the nginx image",
              "kube": "podman kube play deploy/kubernetes/"}
    checks = {"single": ("image_layers", "healthcheck", "user_and_root", "endpoints", "openai", "stop_drains"),
              "nginx": ("both_replicas_resolved", "health_and_request_id", "png_streams", "sse_is_incremental",
                        "metrics_scrape", "openai_sdk", "nginx_errors_are_json", "podman_stop_drains",
                        "podman_kill_under_load"),
              "kube": ("serves", "fields")}
    try:
        for part in parts:
            print(f"container_e2e: {titles[part]}")
            failed_before = report.failed
            init = (args.image, workdir) if part == "kube" else (args.image,)
            if report.run(f"{part}_starts", start(part, *init)):
                for name in checks[part]:
                    report.run(f"{part}_{name}", getattr(made[part], name))
            if report.failed > failed_before:
                kube = made.get("kube")
                dump_logs(["wuerstchen-e2e-single", "wuerstchen-e2e-a", "wuerstchen-e2e-b", BehindNginx.NGINX]
                          + (kube.containers if kube else []))
            cleanup()
    finally:
        cleanup()
    print(f"  {time.time() - started:.0f} s")
    print(f"container_e2e: {report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
