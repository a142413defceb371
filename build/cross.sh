#!/bin/sh
# Cross-builds pinhole for the OpenWrt targets in build/targets.sh into
# $DIST/<arch>/pinhole (DIST defaults to dist): static (CGO off), -trimpath,
# stripped, no build id, no VCS stamp (a stray untracked file would flip
# vcs.modified), version and commit stamped with -X, so two builds of one
# commit are byte-identical wherever they run.
# Usage: build/cross.sh [VERSION] [COMMIT]
#   ONLY="mipsel_24kc x86_64"  build only these architectures
#   DIST=dir                   output directory (default dist)
set -eu
cd "$(dirname "$0")/.."
. build/targets.sh
version=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${2:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
out=${DIST:-dist}
ldflags="-s -w -buildid= -X main.version=$version -X main.commit=$commit"
# No inlining in cold packages: command-line parsing and config checking
# (cmd/...), the status document's writer and server (internal/jsonw,
# internal/admin) and NAT discovery's few STUN transactions
# (agent/internal/netcheck) run rarely, and inlined copies of their helpers
# only cost flash: 25 KB of mipsle code (text 0x3033fc -> 0x2fd11c) and a
# 64 KiB step of the file. Later the config parser (gopkg.in/yaml.v3, run
# at start and reload), port mapping (agent/internal/portmap, a request
# every 10 minutes) and the STUN codec (protocol/stun) joined them: 17 KB
# (text 0x303cd8 -> 0x2ff91c), again a 64 KiB step. Then the agent's
# control plane (package agent: the relay loop, NAT and peer sessions,
# status, stream setup; per stream at most, except peer datagrams the
# relay forwards, where a call instead of an inlined lock costs
# nanoseconds beside the microseconds of their decryption): 14.8 KB (text
# 0x3123f0 -> 0x30e9fc), the step idle copies' parking (internal/splice)
# had crossed. On the 32-bit router targets (mips, mipsle, arm) the relay
# package is cold too: a router runs the agent, and the relay's code there
# is flash (15.8 KB of mipsle text, 0x310668 -> 0x30c8b0, the step this
# session's send path, sealed in place and in flush order, had crossed);
# the 64-bit builds a relay runs on keep its inlining. The data path
# (link, secure, udpio, splice, demux, relaylink) keeps the compiler's
# inlining.
cold="github.com/pinhole/pinhole/cmd/...=-l"
cold2="github.com/pinhole/pinhole/internal/jsonw=-l"
cold3="github.com/pinhole/pinhole/internal/admin=-l"
cold4="github.com/pinhole/pinhole/agent/internal/netcheck=-l"
cold5="gopkg.in/yaml.v3=-l"
cold6="github.com/pinhole/pinhole/agent/internal/portmap/...=-l"
cold7="github.com/pinhole/pinhole/protocol/stun=-l"
cold8="github.com/pinhole/pinhole/agent=-l"
echo "$PINHOLE_TARGETS" | while read -r arch goarch sub; do
	[ -n "$arch" ] || continue
	case " ${ONLY:-$arch} " in *" $arch "*) ;; *) continue;; esac
	mkdir -p "$out/$arch"
	goarm=; gomips=; routercold=$cold8
	case "$goarch" in
	arm) goarm=$sub;;
	mips|mipsle) gomips=$sub;;
	esac
	case "$goarch" in
	arm|mips|mipsle) routercold="github.com/pinhole/pinhole/relay=-l";;
	esac
	env CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" GOARM="$goarm" GOMIPS="$gomips" \
		go build -trimpath -buildvcs=false -gcflags="$cold" -gcflags="$cold2" -gcflags="$cold3" -gcflags="$cold4" \
		-gcflags="$cold5" -gcflags="$cold6" -gcflags="$cold7" -gcflags="$cold8" -gcflags="$routercold" \
		-ldflags "$ldflags" -o "$out/$arch/pinhole" ./cmd/pinhole
	printf '%-26s %8d bytes\n' "$arch" "$(wc -c < "$out/$arch/pinhole")"
done
