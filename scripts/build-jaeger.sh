#!/usr/bin/env bash
# Builds Jaeger v2 (github.com/jaegertracing/jaeger cmd/jaeger) into bin/jaeger.
#
# Jaeger is built inside a private copy of its own module (its go.mod carries
# replace directives), never through this repository's go.mod. The UI assets
# are not part of the Go module, so the binary serves Jaeger's placeholder
# index.html; only the query HTTP API (/api/...) is useful locally.
#
# Usage: scripts/build-jaeger.sh   (set FORCE=1 to rebuild anyway)
set -euo pipefail

JAEGER_MODULE=github.com/jaegertracing/jaeger
JAEGER_VERSION=v1.76.0

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="$repo_root/bin"
out="$bin_dir/jaeger"
version_file="$bin_dir/jaeger.version"

die() {
	echo "build-jaeger: error: $*" >&2
	exit 1
}

if [[ "${FORCE:-0}" != 1 && -x "$out" && -f "$version_file" ]] &&
	[[ "$(cat "$version_file")" == "$JAEGER_VERSION" ]]; then
	echo "build-jaeger: $out is already $JAEGER_VERSION (FORCE=1 to rebuild)"
	exit 0
fi

command -v go >/dev/null || die "go is not on PATH"

start=$SECONDS
echo "build-jaeger: downloading $JAEGER_MODULE@$JAEGER_VERSION"
# Run outside the repository so our go.mod/go.work play no part.
if ! dl_json="$(cd / && GOWORK=off GOFLAGS=-mod=mod go mod download -json "$JAEGER_MODULE@$JAEGER_VERSION")"; then
	die "go mod download failed: $dl_json"
fi
mod_dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$dl_json")"
[[ -n "$mod_dir" && -d "$mod_dir" ]] || die "no module Dir in go mod download output: $dl_json"

work_dir="$(mktemp -d "${TMPDIR:-/tmp}/build-jaeger.XXXXXX")"
trap 'chmod -R u+w "$work_dir" 2>/dev/null || true; rm -rf "$work_dir"' EXIT

src="$work_dir/jaeger"
cp -r "$mod_dir" "$src"
chmod -R u+w "$src" # the module cache is read-only

# The UI package embeds actual/* and falls back to placeholder/index.html when
# actual/index.html.gz is absent. Make sure both patterns match something so
# the embed directives compile even if the module ships them empty.
ui_dir="$src/cmd/query/app/ui"
if [[ -d "$ui_dir" ]]; then
	mkdir -p "$ui_dir/actual" "$ui_dir/placeholder"
	[[ -n "$(ls -A "$ui_dir/actual")" ]] || touch "$ui_dir/actual/.gitkeep"
	[[ -f "$ui_dir/placeholder/index.html" ]] ||
		echo '<!doctype html><title>Jaeger UI not built</title>' >"$ui_dir/placeholder/index.html"
fi

mkdir -p "$bin_dir"
tmp_out="$bin_dir/.jaeger.tmp.$$"
echo "build-jaeger: building ./cmd/jaeger (takes several minutes)"
if ! (cd "$src" && GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath \
	-ldflags "-X github.com/jaegertracing/jaeger/internal/version.latestVersion=$JAEGER_VERSION" \
	-o "$tmp_out" ./cmd/jaeger); then
	rm -f "$tmp_out"
	die "go build of $JAEGER_MODULE@$JAEGER_VERSION ./cmd/jaeger failed"
fi
mv -f "$tmp_out" "$out"
echo "$JAEGER_VERSION" >"$version_file"
echo "build-jaeger: built $out ($JAEGER_VERSION) in $((SECONDS - start))s"
