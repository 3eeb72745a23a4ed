#!/usr/bin/env bash
# Builds the static dura binary on the host (reusing the Go build cache)
# and the FROM scratch image dura:local from it, without a registry.
#
#   deploy/build-image.sh                 # image dura:local
#   DURA_IMAGE=dura:test DURA_BUILD=2 deploy/build-image.sh
#
# DURA_IMAGE names the image (default dura:local); DURA_BUILD becomes the
# image's dura.build label (default: the git commit), so a new label makes
# a new image even from the same binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
image="${DURA_IMAGE:-dura:local}"
build="${DURA_BUILD:-$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo dev)}"
ctx="$here/.build"

export PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "build-image: go not found" >&2; exit 1; }
command -v docker >/dev/null || { echo "build-image: docker not found" >&2; exit 1; }

# The build context holds only the binary and two empty directories, so
# nothing else of the repository is sent to the daemon.
rm -rf "$ctx"
mkdir -p "$ctx/rootfs/data" "$ctx/rootfs/tmp"
chmod 0755 "$ctx/rootfs/data"
chmod 1777 "$ctx/rootfs/tmp"

echo "build-image: static binary (the first build compiles SQLite, about a minute)" >&2
(cd "$repo" && CGO_ENABLED=1 go build \
  -tags 'netgo osusergo sqlite_omit_load_extension sqlite_fts5' \
  -ldflags '-s -w -linkmode external -extldflags "-static"' \
  -o "$ctx/dura" ./cmd/dura)

# Docker Engine 20.10 here has no buildx: use the classic builder unless
# buildx is installed (a newer client would otherwise insist on BuildKit).
if ! docker buildx version >/dev/null 2>&1; then
  export DOCKER_BUILDKIT=0
fi
echo "build-image: image $image (dura.build=$build)" >&2
docker build -q -f "$here/Dockerfile" --build-arg "DURA_BUILD=$build" -t "$image" "$ctx" >/dev/null
docker image inspect --format '{{.Id}}' "$image"
