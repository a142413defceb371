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
		echo "fuzz $pkg $f ($t)"
		go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$pkg"
	done
done
