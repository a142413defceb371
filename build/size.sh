#!/bin/sh
# Size report (`make size`): the stripped binary of every target in dist/,
# the packages, where the mipsle bytes go (ELF sections, then the Go
# packages that contribute most), and the budget check:
#   mipsle binary <= 5.75 MiB, router .ipk <= 2.3 MB (x86_64 is exempt).
# Exits 1 when a budget is exceeded. Reads $DIST (default dist): run
# build/cross.sh (and build/package.sh for the package lines) first.
set -eu
cd "$(dirname "$0")/.."
# 5.75 MiB: issue 5 set 5.5 MiB; the NAT-discovery issue (9) lets it move to
# 5.75 MiB for itself and the peer-to-peer issue together. Where the bytes
# went (5.13 -> 5.63 MiB): mostly .text and .gopclntab of new code spread
# over relay (handshake gates, STUN server, flow eviction, duplicate keys),
# agent (timers, NAT discovery, netcheck), protocol/stun and splice (stream
# resets, stall guard); the only new std package is runtime/metrics.
# Then 112,321 bytes of sections came back (5,826,918 -> 5,714,597; the
# file 5,898,397 -> 5,832,861, one 64 KiB segment step) from std machinery
# a single call site pulled in: json.Unmarshal in `pinhole status` (the
# reflection decoder, 62,855: cmd/pinhole/internal/jsonvalue instead),
# errors.As (20,237: splice.NetTimeout), os.ReadDir's sort (14,043),
# sort.Strings' generic copy (12,504: sort.Sort), the STUN attribute-name
# map built at init (2,193) and the name regexps (489). Then 234,774
# (5,938,405 -> 5,703,631; the file 6,029,469 -> 5,832,861): log/slog,
# whose default handler links encoding/json's reflection encoder, replaced
# by internal/slog (94,851), and the status documents and `nat --json`
# written by internal/jsonw instead of encoding/json (139,923).
# Then the rest of issues 9 and 10 (the file back to 6,029,469): port
# mapping (PCP, NAT-PMP, UPnP IGD: about 102 KB of sections), peer sessions
# (introductions, punching, birthday, TCP simultaneous open, connect
# listeners: about 60 KB), heartbeat skipping, the router integration of
# issue 14 (syslog, WAN signal, keygen -c); and 25 KB of code back from
# not inlining in cold packages (build/cross.sh): the file 5,898,397.
# The file moves in 64 KiB steps: the linker starts each segment, and the
# section names after them, on a 64 KiB boundary. Then 179,976 bytes of
# sections (the file 5,963,933 -> 5,767,325, three steps; the text segment
# ends at 0x2f2914, was 0x2ffddc): crypto/ecdh, used only for X25519,
# linked a P-256 self-test and its 88 KB table (.noptrdata -88,160, .text
# -54,472, .gopclntab -31,720); protocol/secure/x25519.go, an RFC 7748
# ladder of about 8.6 KB of code, does X25519 on every architecture but
# amd64 and arm64 (which keep crypto/ecdh's assembly), and
# build/floors_test.go keeps crypto/ecdh out of the mips and arm builds.
# Still large and not pinhole's own: yaml.v3's two init-time regexps link
# regexp and the unicode tables (about 272 KB); kcp-go's crypt.go costs
# about 17 KB (des, sha1, pbkdf2 inits; the other ciphers are not linked).
budget=6029312
ipk_budget=2300000    # 2.3 MB: 2.2 MB grown with the binary budget (5.5 -> 5.75 MiB, +4.5 %)
dist=${DIST:-dist}
mib() { awk -v n="$1" 'BEGIN { printf "%.2f MiB", n / 1048576 }'; }

echo "stripped binaries:"
for f in "$dist"/*/pinhole; do
	printf '  %-26s %8d bytes  %s\n' "$(basename "$(dirname "$f")")" "$(wc -c < "$f")" "$(mib "$(wc -c < "$f")")"
done
if ls "$dist"/*.ipk "$dist"/*.apk >/dev/null 2>&1; then
	echo "packages:"
	for f in "$dist"/*.ipk "$dist"/*.apk; do printf '  %-50s %8d bytes\n' "$(basename "$f")" "$(wc -c < "$f")"; done
fi

# sections SIZE_FILE: "name size" for each section that occupies the file.
sections() {
	readelf -SW "$1" | sed -n 's/^ *\[ *[0-9]*\] //p' | awk '
		function hex(s,   i, n) { n = 0; s = tolower(s); for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return n }
		$2 == "PROGBITS" && hex($3) > 0 { print $1, hex($3), hex($5) }'
}
mipsle=$dist/mipsel_24kc/pinhole
size=$(wc -c < "$mipsle")
echo "mipsle binary by ELF section (file bytes; the rest is headers and 64 KiB segment alignment):"
sections "$mipsle" | awk -v total="$size" '
	{ sum += $3; printf "  %-14s %8d\n", $1, $3 }
	END { printf "  %-14s %8d\n", "(alignment)", total - sum }'

# Packages: symbol sizes of an unstripped mipsle build, counting only symbols
# that lie in a section stored in the file (not .bss/.noptrbss, where for
# example the 32 MiB drbg.memory sits), summed by package path. .gopclntab
# and most of .rodata (type data, strings) belong to no symbol nm sizes, so
# the total is below the file size; .text ranks the packages well.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 GOOS=linux GOARCH=mipsle GOMIPS=softfloat \
	go build -trimpath -buildvcs=false -ldflags=-buildid= -o "$tmp/pinhole" ./cmd/pinhole
sections "$tmp/pinhole" > "$tmp/sections"
readelf -SW "$tmp/pinhole" | sed -n 's/^ *\[ *[0-9]*\] //p' | awk '$2 == "PROGBITS" { print $1, $3, $5 }' > "$tmp/ranges"
go tool nm -size "$tmp/pinhole" > "$tmp/nm"
echo "top contributors to the mipsle binary (bytes of code and data by package):"
awk '
	function hex(s,   i, n) { n = 0; s = tolower(s); for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1; return n }
	FILENAME == ARGV[1] { if (hex($2) > 0) { lo[++nr] = hex($2); hi[nr] = hex($2) + hex($3) }; next }
	{
		addr = hex($1); size = $2; name = $4
		for (i = 5; i <= NF; i++) name = name " " $i
		stored = 0
		for (r = 1; r <= nr; r++) if (addr >= lo[r] && addr < hi[r]) { stored = 1; break }
		if (!stored || size == 0) next
		sub(/^type:\.(eq|hash)\./, "", name); sub(/^go:itab\.\*?/, "", name); sub(/^\*/, "", name)
		sub(/^go:func\.\*$/, "(funcdata, all packages)", name)
		# package path: up to the first "." after the last "/"
		n = split(name, parts, "/"); pkg = ""
		for (i = 1; i < n; i++) pkg = pkg parts[i] "/"
		split(parts[n], seg, "."); pkg = pkg seg[1]
		gsub(/%2e/, ".", pkg)
		sum[pkg] += size; total += size
	}
	END { for (p in sum) printf "%10d  %s\n", sum[p], p; printf "%10d  %s\n", total, "(total in symbols)" > "/dev/stderr" }
' "$tmp/ranges" "$tmp/nm" 2> "$tmp/total" | sort -rn | head -25
cat "$tmp/total"

fail=0
if [ "$size" -gt "$budget" ]; then
	echo "FAIL: mipsle binary is $size bytes ($(mib "$size")), over the budget of $budget (5.75 MiB) by $((size - budget)) bytes"
	fail=1
else
	echo "ok: mipsle binary $size bytes ($(mib "$size")), budget $budget (5.75 MiB): $(( (budget - size) / 1024 )) KiB left"
fi
largest=0
for f in "$dist"/*.ipk; do
	[ -e "$f" ] || continue
	case "$f" in *_x86_64.ipk) continue;; esac
	s=$(wc -c < "$f")
	[ "$s" -le "$largest" ] || largest=$s
	if [ "$s" -gt "$ipk_budget" ]; then echo "FAIL: $(basename "$f") is $s bytes, over $ipk_budget"; fail=1; fi
done
[ "$largest" = 0 ] || [ "$fail" = 1 ] || echo "ok: router .ipk packages at most $ipk_budget bytes: the largest is $largest"
exit $fail
