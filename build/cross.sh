#!/bin/sh
# Cross-builds pinhole for every OpenWrt target in build/targets.sh into
# dist/<arch>/pinhole: static (CGO off), -trimpath, stripped, no build id,
# version and commit stamped, so two builds of one commit are identical.
# Usage: build/cross.sh [VERSION] [COMMIT]
set -eu
cd "$(dirname "$0")/.."
. build/targets.sh
version=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${2:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
ldflags="-s -w -buildid= -X main.version=$version -X main.commit=$commit"
echo "$PINHOLE_TARGETS" | while read -r arch goarch sub; do
	[ -n "$arch" ] || continue
	mkdir -p "dist/$arch"
	env CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" \
		$( [ "$goarch" = arm ] && echo "GOARM=$sub" ) \
		$( case "$goarch" in mips|mipsle) echo "GOMIPS=$sub";; esac ) \
		go build -trimpath -ldflags "$ldflags" -o "dist/$arch/pinhole" ./cmd/pinhole
	printf '%-26s %8d bytes\n' "$arch" "$(wc -c < "dist/$arch/pinhole")"
done
