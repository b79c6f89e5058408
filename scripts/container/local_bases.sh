#!/usr/bin/env bash
# Makes the three base images the Dockerfile and deploy/docker-compose.yml name, from Debian's packages,
# for machines that reach no image registry (the CI machines: scripts/ci/container_e2e.sh). Where a
# registry is reachable this is not needed: `podman build` / `docker build` pull the official images.
#
#   docker.io/library/debian:bookworm-slim   mmdebstrap --variant=minbase bookworm (release, updates, security),
#                                             without docs, man pages and locales (the official slim image's dpkg
#                                             excludes), merged /usr. Unlike the official image it has no apt
#                                             clean-up hook (docker-clean), so scripts/container/runtime.sh must
#                                             clean apt's cache itself.
#   docker.io/library/swift:6.3-bookworm     the same + the build packages of the official swift image
#                                             (swiftlang/swift-docker, 6.x/debian/12) + the toolchain found on
#                                             PATH, copied to /opt/swift (on PATH) + git's url.*.insteadOf rules
#                                             of this machine (`git config --system`) with the local folders
#                                             they point to (the Swift package mirrors), which the container
#                                             build needs to resolve Package.swift's dependencies.
#   docker.io/library/nginx:stable-bookworm  the same + Debian's nginx, configured like the official image:
#                                             nginx.conf includes conf.d/*.conf (a default.conf on port 80),
#                                             access log to stdout, error log to stderr, `nginx -g 'daemon off;'`
#                                             in the foreground, SIGQUIT to stop.
#
# Idempotent: an image that exists is kept (podman's image store survives between CI runs); the swift
# image is remade when the toolchain on PATH has another version than the one it was made from (label
# wuerstchen.swift-version). --force remakes all three; `podman rmi IMAGE` first remakes one.
#
# Usage: scripts/container/local_bases.sh [--force]      (as root; needs podman and mmdebstrap)
set -euo pipefail

debian_image=docker.io/library/debian:bookworm-slim
swift_image=docker.io/library/swift:6.3-bookworm
nginx_image=docker.io/library/nginx:stable-bookworm
suite=bookworm
mirror=${WUERSTCHEN_DEBIAN_MIRROR:-http://deb.debian.org}
# The official image's sources: the release, its updates and the security archive.
sources=("deb $mirror/debian $suite main" "deb $mirror/debian $suite-updates main"
         "deb $mirror/debian-security $suite-security main")
# The build packages of the official swift:6.x-bookworm image, and ca-certificates for https remotes.
swift_packages=(binutils binutils-gold gcc git libc6-dev libcurl4-openssl-dev libedit-dev libicu-dev
                libncurses-dev libpython3-dev libsqlite3-dev libstdc++-12-dev libxml2-dev libz3-dev pkg-config
                tzdata unzip uuid-dev zlib1g-dev ca-certificates)

force=0
case "${1:-}" in
    "") ;;
    --force) force=1 ;;
    *) echo "local_bases.sh: unknown argument '$1' (usage: local_bases.sh [--force])" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
    echo "local_bases.sh: must run as root (mmdebstrap builds the root file systems as root)" >&2
    exit 1
fi
for tool in podman mmdebstrap; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "local_bases.sh: $tool is not installed (apt-get install podman runc mmdebstrap)" >&2
        exit 1
    fi
done

# The official slim image's /etc/dpkg/dpkg.cfg.d/docker: no docs (copyrights kept), man pages or locales.
slim=(--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias'
      --dpkgopt='path-exclude=/usr/share/groff/*' --dpkgopt='path-exclude=/usr/share/lintian/*'
      # /bin, /sbin and /lib as links into /usr (bookworm's layout) made by mmdebstrap's hook, not by the usrmerge
      # package, which would pull perl (50 MB) into every image.
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
      # apt's package lists are not part of an image (as in the official one); RUN steps fetch them.
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb')

# The official images' PATH (an imported root has no environment: without it, kube play finds no command).
path=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

exists() {  # exists IMAGE: the image is in podman's store and --force was not given
    ((force == 0)) && podman image exists "$1"
}

# make IMAGE CHANGE... -- MMDEBSTRAP_ARGS...: a root file system piped from mmdebstrap into podman import.
make_image() {
    local image=$1; shift
    local changes=()
    while [ "$1" != "--" ]; do changes+=(--change "$1"); shift; done
    shift
    echo "local_bases.sh: making $image" >&2
    local started=$SECONDS log
    log=$(mktemp)
    # mmdebstrap's and its hooks' chatter goes to a log, shown only when the image could not be made.
    if ! mmdebstrap --quiet --variant=minbase --format=tar "${slim[@]}" "$@" "$suite" - "${sources[@]}" 2> "$log" \
            | podman import "${changes[@]}" - "$image" > /dev/null 2>> "$log"; then
        tail -40 "$log" >&2
        rm -f "$log"
        echo "local_bases.sh: could not make $image (mmdebstrap or podman import failed, last lines above)" >&2
        exit 1
    fi
    rm -f "$log"
    echo "local_bases.sh: $image made in $((SECONDS - started)) s ($(podman image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}'))" >&2
}

if exists "$debian_image"; then
    echo "local_bases.sh: $debian_image exists, kept" >&2
else
    make_image "$debian_image" "ENV $path" 'CMD ["bash"]' --
fi

# The toolchain on PATH: its root holds usr/bin/swift.
swift_bin=$(command -v swift || true)
if [ -z "$swift_bin" ]; then
    echo "local_bases.sh: no swift on PATH; $swift_image copies the toolchain found there" >&2
    exit 1
fi
swift_root=$(dirname "$(dirname "$(dirname "$(readlink -f "$swift_bin")")")")
swift_version=$("$swift_bin" --version 2>/dev/null | sed -n 's/.*Swift version \([^ ]*\).*/\1/p' | head -1)
if [ ! -x "$swift_root/usr/bin/swift" ] || [ -z "$swift_version" ]; then
    echo "local_bases.sh: $swift_bin is not in a toolchain laid out as ROOT/usr/bin/swift (or has no version)" >&2
    exit 1
fi
made_from=""
if podman image exists "$swift_image"; then
    made_from=$(podman image inspect --format '{{index .Labels "wuerstchen.swift-version"}}' "$swift_image" 2>/dev/null || true)
fi
if exists "$swift_image" && [ "$made_from" = "$swift_version" ]; then
    echo "local_bases.sh: $swift_image exists (Swift $swift_version), kept" >&2
else
    # git's insteadOf rules, and the local folders they point to, copied in at the same paths.
    hooks=(--customize-hook="mkdir -p \"\$1/opt/swift\"" --customize-hook="sync-in $swift_root /opt/swift")
    gitconfig=$(mktemp)
    trap 'rm -f "$gitconfig"' EXIT
    while read -r key value; do
        base=${key#url.}; base=${base%.insteadof}
        git config --file "$gitconfig" --add "url.$base.insteadOf" "$value"
        if [ -d "$base" ] && [[ "$base" == /* ]]; then
            hooks+=(--customize-hook="mkdir -p \"\$1$base\"" --customize-hook="sync-in $base $base")
        fi
    done < <(git config --system --get-regexp '^url\..*\.insteadof$' || true)
    # Each folder once (several rules usually share one mirror folder).
    mapfile -t hooks < <(printf '%s\n' "${hooks[@]}" | awk '!seen[$0]++')
    hooks+=(--customize-hook="copy-in $gitconfig /etc" --customize-hook="mv \"\$1/etc/$(basename "$gitconfig")\" \"\$1/etc/gitconfig\""
            --customize-hook="chmod 644 \"\$1/etc/gitconfig\"")
    make_image "$swift_image" "ENV PATH=/opt/swift/usr/bin:${path#PATH=}" \
        "LABEL wuerstchen.swift-version=$swift_version" 'CMD ["bash"]' -- \
        --include="$(IFS=,; echo "${swift_packages[*]}")" "${hooks[@]}"
fi

if exists "$nginx_image"; then
    echo "local_bases.sh: $nginx_image exists, kept" >&2
else
    # The official image's nginx.conf (user www-data, Debian's), conf.d/ only, logs to the container's output.
    nginx_conf=$(mktemp -d)
    trap 'rm -rf "$nginx_conf" "${gitconfig:-}"' EXIT
    cat > "$nginx_conf/nginx.conf" <<'EOF'
user  www-data;
worker_processes  auto;

error_log  /var/log/nginx/error.log notice;
pid        /var/run/nginx.pid;

events {
    worker_connections  1024;
}

http {
    include       /etc/nginx/mime.types;
    default_type  application/octet-stream;

    log_format  main  '$remote_addr - $remote_user [$time_local] "$request" '
                      '$status $body_bytes_sent "$http_referer" '
                      '"$http_user_agent" "$http_x_forwarded_for"';

    access_log  /var/log/nginx/access.log  main;

    sendfile        on;
    keepalive_timeout  65;

    include /etc/nginx/conf.d/*.conf;
}
EOF
    cat > "$nginx_conf/default.conf" <<'EOF'
server {
    listen       80;
    server_name  localhost;

    location / {
        root   /var/www/html;
        index  index.html index.htm index.nginx-debian.html;
    }
}
EOF
    make_image "$nginx_image" "ENV $path" 'CMD ["nginx", "-g", "daemon off;"]' 'EXPOSE 80' 'STOPSIGNAL SIGQUIT' -- \
        --include=nginx \
        --customize-hook="copy-in $nginx_conf/nginx.conf /etc/nginx" \
        --customize-hook="rm -f \"\$1\"/etc/nginx/sites-enabled/* \"\$1\"/etc/nginx/conf.d/*" \
        --customize-hook="copy-in $nginx_conf/default.conf /etc/nginx/conf.d" \
        --customize-hook="chmod 644 \"\$1\"/etc/nginx/nginx.conf \"\$1\"/etc/nginx/conf.d/default.conf" \
        --customize-hook="ln -sf /dev/stdout \"\$1\"/var/log/nginx/access.log" \
        --customize-hook="ln -sf /dev/stderr \"\$1\"/var/log/nginx/error.log"
fi
