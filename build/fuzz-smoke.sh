#!/bin/sh
# Runs every Go fuzz target in the module for a short budget (default
# 100000 inputs each) so `make test` catches decoder panics without a long
# fuzzing campaign.
set -eu
t=${1:-100000x}
cd "$(dirname "$0")/.."
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
		n=$t
		case $f in
		# A differential check of two X25519s, not a decoder: each input
		# costs two scalar multiplications (60 s for 100000 on 2 cores).
		FuzzX25519) n=10000x ;;
		esac
		echo "fuzz $pkg $f ($n)"
		go test -run '^$' -fuzz "^$f\$" -fuzztime "$n" "$pkg"
	done
done
