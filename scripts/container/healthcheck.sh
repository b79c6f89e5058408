#!/usr/bin/env bash
# The image's HEALTHCHECK: GET /healthz on 127.0.0.1 and exit 0 only on a 200, through bash's
# /dev/tcp so that the runtime image needs no curl. Port: the first argument, else WUERSTCHEN_PORT,
# else 8080. Plain HTTP only (with `tls` configured, probe from outside instead).
set -u
port=${1:-${WUERSTCHEN_PORT:-8080}}
if ! exec 3<>"/dev/tcp/127.0.0.1/$port"; then
    echo "healthcheck: nothing listens on 127.0.0.1:$port" >&2
    exit 1
fi
printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
if ! IFS= read -r -t 5 status <&3; then
    echo "healthcheck: no answer from 127.0.0.1:$port within 5 s" >&2
    exit 1
fi
status=${status%$'\r'}
case "$status" in
    "HTTP/1.1 200 "*) exit 0 ;;
esac
echo "healthcheck: /healthz answered '$status'" >&2
exit 1
