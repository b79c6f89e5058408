#!/usr/bin/env bash
# The Dockerfile's build stage (CI builds the image with podman: scripts/ci/container_e2e.sh); also usable
# outside a container (scripts/bench/nginx_overhead.py serves such a staged copy). Installs the build packages
# (scripts/setup.sh), builds `wuerstchen` in release with the Swift runtime and Foundation linked statically
# (the runtime image then needs only OpenBLAS, oneDNN, libpng, libjpeg-turbo, libwebp, OpenSSL and zlib: scripts/container/runtime.sh),
# and stages into DEST, which must be missing or empty:
#
#   DEST/bin/wuerstchen                   the server and CLI
#   DEST/bin/wuerstchen_CLIP.resources/   the CLIP tokenizer files, found next to the executable
#   DEST/bin/wuerstchen_Wuerstchen.resources/   the embedded demo model (diffusers folders), likewise
#   DEST/bin/healthcheck                  the image's HEALTHCHECK (scripts/container/healthcheck.sh)
#   DEST/config/server.json               Config/server.json with "host": "0.0.0.0"
#
# Usage: scripts/container/build.sh DEST
# The build folder is .build-container (WUERSTCHEN_CONTAINER_SCRATCH), apart from the tests' .build.
set -euo pipefail
dest=${1:?usage: scripts/container/build.sh DEST}
cd "$(dirname "$0")/../.."
if [ -e "$dest" ] && [ -n "$(ls -A "$dest")" ]; then
    echo "build.sh: $dest is not empty; give a new or empty folder" >&2
    exit 1
fi

bash scripts/setup.sh
scratch=${WUERSTCHEN_CONTAINER_SCRATCH:-.build-container}
flags=(-c release --static-swift-stdlib --scratch-path "$scratch")
swift build "${flags[@]}" --product wuerstchen
bin=$(swift build "${flags[@]}" --show-bin-path)

mkdir -p "$dest/bin" "$dest/config"
install -m 755 "$bin/wuerstchen" "$dest/bin/wuerstchen"
# The DWARF sections (9 of its 85 MB with the static standard library) stay in the build; the symbol table stays
# too, for the names in a crash's backtrace.
strip --strip-debug "$dest/bin/wuerstchen"
bundles=("$bin"/*.resources)
if [ ! -d "${bundles[0]}" ]; then
    echo "build.sh: no resource bundle (*.resources) next to $bin/wuerstchen; the tokenizer and the demo model need them" >&2
    exit 1
fi
cp -R "${bundles[@]}" "$dest/bin/"
install -m 755 scripts/container/healthcheck.sh "$dest/bin/healthcheck"

# In a container the service must listen on every interface; everything else is the default file.
sed 's/^\(  "host": \)"127\.0\.0\.1",$/\1"0.0.0.0",/' Config/server.json > "$dest/config/server.json"
if ! grep -q '^  "host": "0.0.0.0",$' "$dest/config/server.json"; then
    echo "build.sh: Config/server.json has no '  \"host\": \"127.0.0.1\",' line to turn into 0.0.0.0" >&2
    exit 1
fi
chmod 644 "$dest/config/server.json"
chmod -R a+rX "$dest"
echo "build.sh: staged $(du -sh "$dest" | cut -f1) in $dest" >&2
