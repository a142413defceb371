#!/bin/sh
# Installs the Debian packages the tests need, from the one list
# .ci/apt-packages, when some are missing. Run by `make test` (and by
# .ci/run, before make exists on a fresh machine):
#   - nothing missing, or not a Debian system: says nothing, does nothing;
#   - missing, root, apt-get: says which, installs them;
#   - missing otherwise: says which and notes them for the end-of-test
#     summary ($PINHOLE_SKIPS); the suites that need them skip.
set -eu
cd "$(dirname "$0")/.."
command -v dpkg-query >/dev/null 2>&1 || exit 0
missing=
for p in $(grep -v '^[[:space:]]*#' .ci/apt-packages); do
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing="$missing $p"
done
missing=${missing# }
[ -n "$missing" ] || exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	echo "setup: installing the Debian packages the tests need (.ci/apt-packages): $missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
	exit 0
fi
why="not root"; [ "$(id -u)" != 0 ] || why="no apt-get"
echo "setup: missing Debian packages the tests need, not installed ($why): $missing"
[ -z "${PINHOLE_SKIPS:-}" ] || echo "tests that need $missing (not installed)" >> "$PINHOLE_SKIPS"
