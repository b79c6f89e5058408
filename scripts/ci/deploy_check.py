#!/usr/bin/env python3
"""Checks the deployment files against each other, against the service and with real validators.

    python scripts/ci/deploy_check.py --binary .build/release/wuerstchen

Run by scripts/ci/deploy_e2e.sh with the virtualenv of scripts/ci/deploy_venv.sh (kubernetes-validate,
dockerfile = Docker's own parser, PyYAML). Each check prints `ok NAME` or `FAIL NAME: reason`; the last
line is `deploy_check: N passed, M failed` and the exit status is 1 when any failed.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dockerfile
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
CHECKS = []


def check(fn):
    CHECKS.append(fn)
    return fn


def require(condition, message):
    if not condition:
        raise AssertionError(message)


def k8s(name):
    return yaml.safe_load((K8S / name).read_text())


def runtime_uid():
    m = re.search(r"^uid=(\d+)$", (ROOT / "scripts/container/runtime.sh").read_text(), re.M)
    require(m, "scripts/container/runtime.sh sets no uid=N")
    return int(m.group(1))


def default_config():
    return json.loads((ROOT / "Config/server.json").read_text())


def configmap_config():
    return json.loads(k8s("configmap.yaml")["data"]["server.json"])


def nginx_directive(name):
    text = (ROOT / "deploy/nginx/wuerstchen.conf").read_text()
    found = re.findall(rf"^\s*{name}\s+([^;]+);", text, re.M)
    require(len(found) == 1, f"deploy/nginx/wuerstchen.conf: expected one `{name}` directive, found {len(found)}")
    return found[0].strip()


def seconds(value):
    m = re.fullmatch(r"(\d+)(s|m)?", value)
    require(m, f"cannot read a duration from {value!r}")
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


def container():
    spec = k8s("deployment.yaml")["spec"]["template"]["spec"]
    require(len(spec["containers"]) == 1, "deployment.yaml: expected one container")
    return spec, spec["containers"][0]


def memory_bytes(quantity):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", quantity)
    require(m, f"cannot read a memory quantity from {quantity!r}")
    scale = {None: 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return float(m.group(1)) * scale[m.group(2)]


# MARK: - Dockerfile

def dockerfile_stages():
    stages = []
    for command in dockerfile.parse_file(str(ROOT / "Dockerfile")):
        if command.cmd == "FROM":
            stages.append({"from": command.value, "commands": []})
        else:
            require(stages, f"Dockerfile line {command.start_line}: {command.cmd} before FROM")
            stages[-1]["commands"].append(command)
    return stages


@check
def dockerfile_multistage_runs_the_container_scripts():
    stages = dockerfile_stages()
    require(len(stages) == 2, f"expected a build and a runtime stage, got {len(stages)}")
    build, runtime = stages
    require(build["from"][0].startswith("swift:6") and build["from"][-1] == "build",
            f"build stage should be `FROM swift:6.x AS build`, is {' '.join(build['from'])}")
    require(runtime["from"][0] == "debian:bookworm-slim", f"runtime stage should be debian:bookworm-slim, is {runtime['from'][0]}")
    runs = [c.value[0] for c in build["commands"] if c.cmd == "RUN"]
    require(runs == ["bash scripts/setup.sh", "bash scripts/container/build.sh /staging"], f"build stage RUN lines: {runs}")
    runs = [c.value[0] for c in runtime["commands"] if c.cmd == "RUN"]
    require(len(runs) == 1 and runs[0].startswith("bash /usr/local/lib/wuerstchen-runtime.sh"), f"runtime stage RUN lines: {runs}")
    copies = [(c.flags, c.value) for c in runtime["commands"] if c.cmd == "COPY"]
    require((("--from=build",), ("/staging", "/app")) in copies, f"runtime stage does not copy /staging from build to /app: {copies}")
    require(((), ("scripts/container/runtime.sh", "/usr/local/lib/wuerstchen-runtime.sh")) in copies,
            f"runtime stage does not copy scripts/container/runtime.sh: {copies}")


@check
def dockerfile_runtime_contract():
    runtime = dockerfile_stages()[-1]["commands"]
    last = {c.cmd: c for c in runtime}
    user = last["USER"].value[0]
    require(re.fullmatch(r"\d+(:\d+)?", user) and int(user.split(":")[0]) == runtime_uid() != 0,
            f"USER should be the numeric non-root uid {runtime_uid()} of runtime.sh, is {user}")
    require(last["EXPOSE"].value == (str(default_config()["port"]),), f"EXPOSE {last['EXPOSE'].value} is not the default port")
    hc = last["HEALTHCHECK"]
    require(hc.json and hc.value == ("CMD", "/app/bin/healthcheck"), f"HEALTHCHECK should be exec form /app/bin/healthcheck: {hc.original}")
    require('install -m 755 scripts/container/healthcheck.sh "$dest/bin/healthcheck"' in (ROOT / "scripts/container/build.sh").read_text(),
            "build.sh does not stage the healthcheck at bin/healthcheck")
    ep = last["ENTRYPOINT"]
    require(ep.json and ep.value == ("/app/bin/wuerstchen", "serve"), f"ENTRYPOINT should be exec form [/app/bin/wuerstchen, serve]: {ep.original}")
    envs = [c.value for c in runtime if c.cmd == "ENV"]
    require(("WUERSTCHEN_CONFIG", "/app/config/server.json") in envs, f"ENV WUERSTCHEN_CONFIG=/app/config/server.json missing: {envs}")
    require(last["VOLUME"].value == ("/models",), f"VOLUME should be /models: {last['VOLUME'].original}")
    require(last["STOPSIGNAL"].value == ("SIGTERM",), "STOPSIGNAL should be SIGTERM")
    ignore = (ROOT / ".dockerignore").read_text().split("\n")
    require(".git" in ignore and ".build*" in ignore, ".dockerignore must keep .git and .build* out of the context")


# MARK: - docker-compose.yml

@check
def compose_matches_image_and_nginx():
    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    service = compose["services"]["wuerstchen"]
    context = (ROOT / "deploy" / service["build"]["context"]).resolve()
    require((context / service["build"]["dockerfile"]).is_file(), f"build context {context} has no {service['build']['dockerfile']}")
    require(service["expose"] == ["8080"], f"service exposes {service['expose']}")
    grace = seconds(service["stop_grace_period"])
    drain = default_config()["drain_seconds"]
    require(grace > drain, f"stop_grace_period {grace} s must exceed the image's drain_seconds {drain}")
    mounts = compose["services"]["nginx"]["volumes"]
    require(any(m.startswith("./nginx/wuerstchen.conf:/etc/nginx/conf.d/") for m in mounts), f"nginx does not mount the config: {mounts}")
    require(nginx_directive("listen") == "8080", "nginx should listen on 8080 as compose publishes")
    require(compose["services"]["nginx"]["ports"] == ["${WUERSTCHEN_HTTP_PORT:-8080}:8080"], "nginx port mapping changed")
    upstream = re.search(r"upstream wuerstchen \{.*?\n\s*server (\S+)", (ROOT / "deploy/nginx/wuerstchen.conf").read_text(), re.S)
    require(upstream and upstream.group(1) == "wuerstchen:8080", "nginx upstream should be the compose service wuerstchen:8080")
    require(service["environment"]["WUERSTCHEN_PRIOR"] == "${WUERSTCHEN_PRIOR:-}", "WUERSTCHEN_PRIOR must default to empty (demo model)")


# MARK: - nginx

@check
def nginx_follows_the_service_limits():
    config = default_config()
    limits = config["limits"]
    body = nginx_directive("client_max_body_size")
    require(body == "1m" and limits["max_body_bytes"] == 1 << 20, f"client_max_body_size {body} vs max_body_bytes {limits['max_body_bytes']}")
    keepalive = seconds(nginx_directive("keepalive_timeout"))
    require(keepalive < limits["idle_timeout"], f"upstream keepalive_timeout {keepalive} s must be below idle_timeout {limits['idle_timeout']} s")
    requests = int(nginx_directive("keepalive_requests"))
    require(requests <= limits["max_requests_per_connection"], "keepalive_requests above max_requests_per_connection")
    require(nginx_directive("proxy_buffering") == "off", "proxy_buffering must be off for streaming")
    require(seconds(nginx_directive("proxy_read_timeout")) >= 600, "proxy_read_timeout shorter than a 1024 px generation on few cores")
    require(nginx_directive("proxy_set_header X-Request-Id") == "$wuerstchen_request_id", "X-Request-Id not passed upstream")
    require("non_idempotent" in nginx_directive("proxy_next_upstream"), "POST is not retried on another instance")
    cm_limits = configmap_config()["limits"]
    require(cm_limits["max_body_bytes"] <= 1 << 20 and cm_limits["idle_timeout"] > keepalive,
            "configmap.yaml limits disagree with the nginx config (body size, idle timeout)")


# MARK: - Kubernetes

@check
def kubernetes_manifests_validate():
    files = sorted(str(p) for p in K8S.glob("*.yaml"))
    require(len(files) >= 7, f"expected the deploy/kubernetes manifests, found {files}")
    tool = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run([str(tool), "--strict", *files], capture_output=True, text=True)
    print("  " + (result.stdout + result.stderr).strip().replace("\n", "\n  "))
    require(result.returncode == 0, f"kubernetes-validate exited {result.returncode}")
    passed = re.findall(r"^INFO .* passed for resource", result.stdout + result.stderr, re.M)
    require(len(passed) == len(files) - 1, f"{len(passed)} of {len(files)} manifests validated (only the ServiceMonitor may lack a schema)")


@check
def deployment_probes_ports_and_user():
    spec, c = container()
    config = configmap_config()
    port = [p for p in c["ports"] if p["name"] == "http"]
    require(port and port[0]["containerPort"] == config["port"], f"containerPort {port} != configmap port {config['port']}")
    require(c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, "readiness must probe /readyz")
    require(c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, "liveness must probe /healthz")
    require(spec["securityContext"]["runAsUser"] == runtime_uid() and spec["securityContext"]["runAsNonRoot"], "pod must run as the image's uid, non-root")
    require(c["args"] == ["--config", "/etc/wuerstchen/server.json"], f"args {c['args']}")
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    require(mounts["config"] == "/etc/wuerstchen", "the ConfigMap must be mounted where --config points")
    for field in ("prior", "decoder"):
        require(config[field].startswith(mounts["models"] + "/"), f"configmap {field} {config[field]} is not under the models mount")
    require(all(e["name"] != "OPENBLAS_CORETYPE" for e in c.get("env", [])), "OPENBLAS_CORETYPE must not be forced in production")


@check
def deployment_drain_timing():
    spec, c = container()
    drain = configmap_config()["drain_seconds"]
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    require(command[0] == "sleep", f"preStop should sleep: {command}")
    pre_stop = int(command[1])
    grace = spec["terminationGracePeriodSeconds"]
    require(grace >= pre_stop + drain + 5,
            f"terminationGracePeriodSeconds {grace} < preStop {pre_stop} + drain_seconds {drain} + 5: in-flight requests would be SIGKILLed")
    require(5 <= pre_stop <= 30, f"preStop sleep {pre_stop} s: long enough for endpoints to update, short against the grace period")


@check
def deployment_resources_from_measured_rss():
    spec, c = container()
    config = configmap_config()
    rows = re.findall(r"^\| wuerstchen-swift \|[^\n]*\| ([0-9.]+) \|$", (ROOT / "BENCHMARKS.md").read_text(), re.M)
    require(rows, "BENCHMARKS.md has no wuerstchen-swift row with a peak RSS")
    peak = max(float(r) for r in rows) * 1e9
    for kind in ("requests", "limits"):
        memory = memory_bytes(c["resources"][kind]["memory"])
        require(memory >= 1.1 * peak, f"{kind}.memory {c['resources'][kind]['memory']} is under 1.1 x the measured peak RSS {peak / 1e9:.2f} GB")
    cpu = c["resources"]["requests"]["cpu"]
    require(str(config["threads"]) == str(cpu), f"threads {config['threads']} should equal the CPU request {cpu}")
    require(config["max_images_per_request"] == 1, "the memory request was measured for one image per request")
    print(f"  peak RSS measured {peak / 1e9:.2f} GB; memory request {c['resources']['requests']['memory']}")


@check
def service_pdb_hpa_monitor_select_the_pods():
    labels = k8s("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    service = k8s("service.yaml")
    require(service["spec"]["selector"].items() <= labels.items(), "service selector does not match the pods")
    require(service["spec"]["ports"][0]["targetPort"] == "http", "service targetPort should be the named port http")
    require(k8s("pdb.yaml")["spec"]["selector"]["matchLabels"].items() <= labels.items(), "PDB selector does not match the pods")
    hpa = k8s("hpa.yaml")["spec"]
    require(hpa["scaleTargetRef"]["name"] == k8s("deployment.yaml")["metadata"]["name"], "HPA targets another Deployment")
    require(hpa["minReplicas"] >= 2, "with one replica the PDB blocks every voluntary eviction")
    metric = hpa["metrics"][0]
    require(metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "wuerstchen_queue_depth", "HPA must scale on the pods' queue depth")
    monitor = k8s("servicemonitor.yaml")
    require(monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items(), "ServiceMonitor does not select the service")
    require(monitor["spec"]["endpoints"][0]["port"] in [p["name"] for p in service["spec"]["ports"]], "ServiceMonitor port is not a service port")
    annotations = k8s("deployment.yaml")["spec"]["template"]["metadata"]["annotations"]
    require(annotations["prometheus.io/path"] == "/metrics" and annotations["prometheus.io/port"] == str(configmap_config()["port"]),
            "scrape annotations do not point at /metrics on the service port")


@check
def configmap_config_starts_the_server(binary=None):
    """The ConfigMap's server.json through the real loader (models switched to the demo, loopback, any port)."""
    binary = binary or ARGS.binary
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(k8s("configmap.yaml")["data"]["server.json"])
        path = f.name
    os.chmod(path, 0o644)
    env = dict(os.environ, WUERSTCHEN_HOST="127.0.0.1", WUERSTCHEN_PORT="0", WUERSTCHEN_PRIOR="", WUERSTCHEN_DECODER="", WUERSTCHEN_THREADS="1")
    process = subprocess.Popen([binary, "serve", "--config", path], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        require(line.startswith("listening on http://127.0.0.1:"), f"serve with configmap.yaml's server.json did not start: {line!r} {process.stderr.read() if not line else ''}")
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
        require(code == 0, f"serve exited {code} after SIGTERM")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.unlink(path)


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True, help="a release build of wuerstchen (swift build -c release)")
    ARGS = parser.parse_args()
    passed = failed = 0
    for fn in CHECKS:
        try:
            fn()
            print(f"ok {fn.__name__}")
            passed += 1
        except Exception as e:  # noqa: BLE001 - every failure is reported by name
            print(f"FAIL {fn.__name__}: {type(e).__name__}: {e}")
            failed += 1
        sys.stdout.flush()
    print(f"deploy_check: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
