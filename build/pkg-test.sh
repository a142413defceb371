#!/bin/sh
# The router-side test suite (`make pkg-test`, part of `make test`):
#  1. cross builds are reproducible (two builds of this commit, same bytes);
#  2. the mipsle binary fits its budget (build/size.sh);
#  3. the router binaries run under qemu-user: version, and check of the
#     example configs;
#  4. the .ipk installs with the real opkg, and the .apk with the real apk,
#     into throw-away roots: files in place, service enabled, a user-edited
#     config kept on upgrade (the new default beside it), kept on removal,
#     and a package for another architecture refused;
#  5. the procd init script issues the right commands, and a broken config
#     is logged instead of starting a process procd would respawn.
# Needs the tools build-pkgtools.sh builds (cached in .cache/pkgtools).
set -eu
cd "$(dirname "$0")/.."
here=$(pwd)
tools="$here/.cache/pkgtools/bin"
shared="$here/../shared/tools"
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fails=0
pass() { echo "ok:   $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { if eval "$2"; then pass "$1"; else fail "$1"; fi; }

echo "== tools"
if [ ! -x "$tools/apk" ] || [ ! -x "$tools/opkg-cl" ]; then
	sh "$shared/build-pkgtools.sh" "$here/.cache/pkgtools" >/dev/null
fi
apk() { LD_LIBRARY_PATH="$tools" "$tools/apk" "$@"; }

echo "== 1. reproducible cross builds"
rm -f dist/*.ipk dist/*.apk
build/cross.sh >/dev/null
cp dist/mipsel_24kc/pinhole "$t/first"
build/cross.sh >/dev/null
check "two mipsle builds of one commit are byte-identical ($(sha256sum < "$t/first" | cut -c1-16))" \
	'cmp -s "$t/first" dist/mipsel_24kc/pinhole'

echo "== 2. size budget"
build/package.sh "$tools" >/dev/null
if build/size.sh > "$t/size.txt" 2>&1; then pass "$(tail -1 "$t/size.txt")"; else cat "$t/size.txt"; fail "size budget"; fi
cp dist/pinhole_*_mipsel_24kc.ipk "$t/a.ipk"
build/package.sh "$tools" >/dev/null
check "two .ipk builds are byte-identical" 'cmp -s "$t/a.ipk" dist/pinhole_*_mipsel_24kc.ipk'

echo "== 3. router binaries under qemu-user"
mkdir -p "$t/cfg"
cp configs/agent.yaml configs/relay.yaml "$t/cfg/"
dist/x86_64/pinhole keygen > "$t/cfg/agent.key"
dist/x86_64/pinhole keygen > "$t/cfg/relay.key"
for spec in qemu-mipsel-static:mipsel_24kc qemu-mips-static:mips_24kc qemu-arm-static:arm_cortex-a7_neon-vfpv4 qemu-arm-static:arm_arm926ej-s qemu-aarch64-static:aarch64_generic; do
	q=${spec%%:*}; arch=${spec#*:}
	if ! command -v "$q" >/dev/null; then
		if [ "${CI:-}" = true ]; then fail "$q missing (apt-get install qemu-user-static)"; else echo "SKIP: $q not installed"; fi
		continue
	fi
	out=$("$q" "dist/$arch/pinhole" version 2>&1) || true
	check "$arch under $q: $out" 'echo "$out" | grep -q "^pinhole "'
	check "$arch under $q: check of configs/agent.yaml and relay.yaml" \
		'"$q" "dist/$arch/pinhole" check -c "$t/cfg/agent.yaml" >/dev/null && "$q" "dist/$arch/pinhole" check -c "$t/cfg/relay.yaml" >/dev/null'
done

# A second version whose default config differs, to test conffile upgrades.
v1=$(ls dist/pinhole_*_mipsel_24kc.ipk | sed 's/.*pinhole_\(.*\)_mipsel.*/\1/')
sed 's/^name: openwrt$/name: openwrt-v2/' openwrt/files/agent.yaml > "$t/agent-v2.yaml"
mkdir -p "$t/dist1" && cp dist/*_mipsel_24kc.ipk dist/*_mipsel_24kc.apk dist/*_mips_24kc.ipk dist/*_mips_24kc.apk "$t/dist1/"
cp openwrt/files/agent.yaml "$t/agent-v1.yaml"
cp "$t/agent-v2.yaml" openwrt/files/agent.yaml
PKG_VERSION=9.9.9 build/package.sh "$tools" >/dev/null || true
cp "$t/agent-v1.yaml" openwrt/files/agent.yaml
ipk1=$(ls "$t"/dist1/pinhole_*_mipsel_24kc.ipk); ipk2=dist/pinhole_9.9.9-r1_mipsel_24kc.ipk
apk1=$(ls "$t"/dist1/pinhole-*_mipsel_24kc.apk); apk2=dist/pinhole-9.9.9-r1_mipsel_24kc.apk
ipkwrong=$(ls "$t"/dist1/pinhole_*_mips_24kc.ipk); apkwrong=$(ls "$t"/dist1/pinhole-*_mips_24kc.apk)

echo "== 4a. opkg (OpenWrt <= 24.10): install $v1, upgrade to 9.9.9-r1, remove"
R="$t/opkg-root"
mkdir -p "$R/var/lock" "$R/usr/lib/opkg/info" "$R/tmp"
printf 'dest root /\narch all 1\narch noarch 1\narch mipsel_24kc 10\n' > "$t/opkg.conf"
printf 'Package: libc\nVersion: 1.2.5-r4\nStatus: install user installed\nArchitecture: mipsel_24kc\nInstalled-Time: 0\n\n' > "$R/usr/lib/opkg/status"
touch "$R/usr/lib/opkg/info/libc.list"
opkg() { IPKG_INSTROOT="$R" "$tools/opkg-cl" -f "$t/opkg.conf" -o "$R" -t "$R/tmp" --force-postinstall "$@"; }
opkg install "$ipk1" > "$t/log" 2>&1 || { cat "$t/log"; fail "opkg install"; }
check "opkg: /usr/bin/pinhole is the mipsel build" 'cmp -s "$R/usr/bin/pinhole" dist/mipsel_24kc/pinhole'
check "opkg: /etc/init.d/pinhole installed, executable" '[ -x "$R/etc/init.d/pinhole" ]'
check "opkg: /etc/pinhole/agent.yaml installed, mode 600" '[ "$(stat -c %a "$R/etc/pinhole/agent.yaml")" = 600 ]'
check "opkg: postinst enabled the service (rc.d/S95pinhole)" '[ -L "$R/etc/rc.d/S95pinhole" ]'
echo "# edited by the user" >> "$R/etc/pinhole/agent.yaml"
opkg install "$ipk2" > "$t/log" 2>&1 || { cat "$t/log"; fail "opkg upgrade"; }
check "opkg upgrade: the user's edit is kept" 'grep -q "edited by the user" "$R/etc/pinhole/agent.yaml"'
check "opkg upgrade: the new default lands beside it (agent.yaml-opkg)" 'grep -q "openwrt-v2" "$R/etc/pinhole/agent.yaml-opkg"'
opkg remove pinhole > "$t/log" 2>&1 || { cat "$t/log"; fail "opkg remove"; }
check "opkg remove: binary gone" '[ ! -e "$R/usr/bin/pinhole" ]'
check "opkg remove: prerm disabled the service" '[ ! -e "$R/etc/rc.d/S95pinhole" ]'
check "opkg remove: the modified config is kept" 'grep -q "edited by the user" "$R/etc/pinhole/agent.yaml"'
R="$t/opkg-root2"
mkdir -p "$R/var/lock" "$R/usr/lib/opkg/info" "$R/tmp"
printf 'Package: libc\nVersion: 1.2.5-r4\nStatus: install user installed\nArchitecture: mipsel_24kc\nInstalled-Time: 0\n\n' > "$R/usr/lib/opkg/status"
touch "$R/usr/lib/opkg/info/libc.list"
if opkg install "$ipkwrong" > "$t/log" 2>&1; then fail "opkg accepted a mips_24kc package on mipsel_24kc"; else
	check "opkg refuses the wrong architecture: $(grep -o 'incompatible with the architectures configured' "$t/log" | head -1)" \
		'grep -q "incompatible with the architectures configured" "$t/log"'
fi

echo "== 4b. apk (OpenWrt >= 25.12): install, upgrade, remove"
A="$t/apk-root"
mkroot() {
	mkdir -p "$1/etc/apk" "$1/bin"
	echo mipsel_24kc > "$1/etc/apk/arch"
	# apk runs package scripts chrooted: give the root a shell.
	cp "$(command -v busybox)" "$1/bin/busybox"
	for app in sh ln mkdir rm; do ln -sf busybox "$1/bin/$app"; done
}
mkroot "$A"
apkr() { apk --root "$A" --allow-untrusted --no-network "$@"; }
apkr add --initdb "$apk1" > "$t/log" 2>&1 || { cat "$t/log"; fail "apk add"; }
check "apk: /usr/bin/pinhole is the mipsel build" 'cmp -s "$A/usr/bin/pinhole" dist/mipsel_24kc/pinhole'
check "apk: init script and default config installed" '[ -x "$A/etc/init.d/pinhole" ] && [ -f "$A/etc/pinhole/agent.yaml" ]'
check "apk: post-install enabled the service" '[ -L "$A/etc/rc.d/S95pinhole" ]'
echo "# edited by the user" >> "$A/etc/pinhole/agent.yaml"
apkr add "$apk2" > "$t/log" 2>&1 || { cat "$t/log"; fail "apk upgrade"; }
check "apk upgrade: now 9.9.9-r1" 'apkr info -v pinhole 2>/dev/null | grep -q 9.9.9-r1 || grep -q "9.9.9-r1" "$t/log"'
check "apk upgrade: the user's edit is kept" 'grep -q "edited by the user" "$A/etc/pinhole/agent.yaml"'
check "apk upgrade: the new default lands beside it (agent.yaml.apk-new)" 'grep -q "openwrt-v2" "$A/etc/pinhole/agent.yaml.apk-new"'
apkr del pinhole > "$t/log" 2>&1 || { cat "$t/log"; fail "apk del"; }
check "apk del: binary gone" '[ ! -e "$A/usr/bin/pinhole" ]'
check "apk del: pre-deinstall disabled the service" '[ ! -e "$A/etc/rc.d/S95pinhole" ]'
check "apk del: the modified config is kept" 'grep -q "edited by the user" "$A/etc/pinhole/agent.yaml"'
A="$t/apk-root2"
mkroot "$A"
if apkr add --initdb "$apkwrong" > "$t/log" 2>&1; then fail "apk accepted a mips_24kc package on mipsel_24kc"; else
	check "apk refuses the wrong architecture (arch: mips_24kc, uninstallable)" 'grep -q "arch: mips_24kc" "$t/log"'
fi

echo "== 5. procd init script"
sh build/procd-test.sh "$here/openwrt/files/pinhole.init" || fail "procd init script"

rm -f dist/*9.9.9*
if [ "$fails" -gt 0 ]; then echo "pkg-test: $fails failed"; exit 1; fi
echo "pkg-test: all passed"
