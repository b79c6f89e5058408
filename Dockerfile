# syntax=docker/dockerfile:1
# wuerstchen: Würstchen v2 text-to-image over HTTP, on CPUs.
#
#   docker build -t wuerstchen .
#   docker run --rm -p 8080:8080 wuerstchen                                   # embedded demo model
#   docker run --rm -p 8080:8080 -v "$PWD/models:/models:ro" \
#       -e WUERSTCHEN_PRIOR=/models/wuerstchen-prior -e WUERSTCHEN_DECODER=/models/wuerstchen wuerstchen
#
# Every RUN is one of scripts/container/*.sh. CI builds this file with podman (`--format docker`, which keeps
# the HEALTHCHECK) on base images it makes from Debian's packages (scripts/container/local_bases.sh; no
# registry there) and runs the image alone, as two replicas behind nginx and with `podman kube play`
# (scripts/ci/container_e2e.sh); scripts/ci/deploy_check.py checks the instructions of this file.
# x86-64 images need AVX2 and FMA (release builds use -target-cpu haswell).

FROM swift:6.3-bookworm AS build
WORKDIR /src
# The build packages in a layer of their own, cached until setup.sh changes (build.sh finds them installed).
COPY scripts/setup.sh scripts/setup.sh
RUN bash scripts/setup.sh
COPY . .
RUN --mount=type=cache,target=/src/.build-container bash scripts/container/build.sh /staging

FROM debian:bookworm-slim AS runtime
COPY scripts/container/runtime.sh /usr/local/lib/wuerstchen-runtime.sh
RUN bash /usr/local/lib/wuerstchen-runtime.sh
COPY --from=build /staging /app
# The models are mounted here (read-only is enough); without WUERSTCHEN_PRIOR/WUERSTCHEN_DECODER the
# embedded demo model is served.
VOLUME ["/models"]
ENV WUERSTCHEN_CONFIG=/app/config/server.json
# wuerstchen (uid/gid 10001, made by runtime.sh).
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["/app/bin/healthcheck"]
# Exec form: the server is PID 1 and gets SIGTERM itself, drains (drain_seconds, 30 by default) and
# exits 0; give `docker stop` more than that (`docker stop -t 40`, compose's stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/bin/wuerstchen", "serve"]
