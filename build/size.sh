#!/bin/sh
# Prints the stripped size of every target in dist/, the packages' sizes,
# and the Go packages that contribute most to the mipsle binary; exits 1
# when the mipsle binary is over the budget (5.5 MiB) or an .ipk is over
# 2.2 MB. Run build/cross.sh (and build/package.sh) first.
set -eu
cd "$(dirname "$0")/.."
budget=$((11 * 1024 * 1024 / 2))   # 5.5 MiB
ipk_budget=2200000                 # 2.2 MB
echo "stripped binaries:"
for f in dist/*/pinhole; do
	printf '  %-26s %8d bytes  %5.2f MiB\n' "$(basename "$(dirname "$f")")" "$(wc -c < "$f")" "$(echo "$(wc -c < "$f") / 1048576" | bc -l)"
done
if ls dist/*.ipk dist/*.apk >/dev/null 2>&1; then
	echo "packages:"
	for f in dist/*.ipk dist/*.apk; do printf '  %-50s %8d bytes\n' "$(basename "$f")" "$(wc -c < "$f")"; done
fi
# Contributors: symbol sizes of an unstripped mipsle build, summed by package.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
CGO_ENABLED=0 GOOS=linux GOARCH=mipsle GOMIPS=softfloat go build -trimpath -o "$tmp/pinhole" ./cmd/pinhole
echo "top contributors to the mipsle binary (code and data bytes by package):"
go tool nm -size -sort size "$tmp/pinhole" | awk '
	$3 == "B" || $3 == "b" || $3 == "U" { next }   # BSS is not in the file
	$2 > 8388608 { next }   # zero-filled arrays nm labels D (drbg.memory, 32 MiB) are not in the file either
	{ size=$2; name=$4; for (i=5; i<=NF; i++) name=name " " $i
	  sub(/^type:\.eq\./, "", name); sub(/^go:itab\./, "", name)
	  # package path = name up to the first "." after the last "/"
	  n=split(name, parts, "/"); last=parts[n]; pkg=""
	  for (i=1; i<n; i++) pkg=pkg parts[i] "/"
	  split(last, seg, "."); pkg=pkg seg[1]
	  sum[pkg]+=size }
	END { for (p in sum) printf "%10d  %s\n", sum[p], p }' | sort -rn | head -25
size=$(wc -c < dist/mipsel_24kc/pinhole)
fail=0
if [ "$size" -gt "$budget" ]; then
	echo "FAIL: mipsle binary is $size bytes, over the budget of $budget (5.5 MiB)"; fail=1
else
	echo "ok: mipsle binary $size bytes, budget $budget ($(( (budget - size) / 1024 )) KiB left)"
fi
for f in dist/*mips*.ipk; do   # the budget is for the router packages
	[ -e "$f" ] || continue
	if [ "$(wc -c < "$f")" -gt "$ipk_budget" ]; then echo "FAIL: $f is over $ipk_budget bytes"; fail=1; fi
done
exit $fail
