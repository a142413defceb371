#!/bin/sh
# The router-side test suite (`make pkg-test`, part of `make test`). It works
# in a temporary directory, so it neither reads nor clobbers dist/:
#  1. cross builds for every OpenWrt target are reproducible: built twice,
#     and mipsle once more from a copy of the tree at another path with an
#     empty build cache, byte for byte;
#  2. .ipk and .apk packages for every target; the mipsel pair built twice
#     is byte-identical;
#  3. the size report, which fails over the budget (mipsle <= 5.75 MiB,
#     router .ipk <= 2.3 MB);
#  4. the router binaries under qemu-user: version, check of configs/, and
#     build/qemu_test.go (an emulated agent serves TCP and UDP exposures
#     through the amd64 relay on loopback);
#  5. the .ipk with the real opkg into an offline root (IPKG_INSTROOT, as in
#     an image build): files, conffile, rc.d links; upgrades keep the user's
#     config (the new default lands in agent.yaml-opkg) and the user's
#     enabled/disabled choice; removal keeps the edited config; a package
#     for another architecture is refused;
#  6. the .apk with the real apk into a root where its scripts run chrooted,
#     as on a router, against a stand-in /etc/rc.common that records what
#     they ask for: enable+start on install, restart only when enabled on
#     upgrade, stop+disable on removal; config kept (agent.yaml.apk-new),
#     sysupgrade metadata (/lib/apk/packages); wrong architecture refused;
#  7. the x86_64 .ipk's service under the real procd, ubusd and logd
#     (build/procd-test.sh; needs root, like the lab);
#  8. the relay's systemd unit under the real systemd (build/systemd-test.sh,
#     root).
# opkg and apk come from ../shared/tools (build-pkgtools.sh, cached in
# .cache/pkgtools), procd and its companions from build-procd.sh (cached in
# .cache/procd); they build in the background during step 1.
set -eu
cd "$(dirname "$0")/.."
here=$(pwd)
pkgtools=${PKGTOOLS:-$here/.cache/pkgtools}
tools=$pkgtools/bin
shared=${SHARED_TOOLS:-$here/../shared/tools}
procd=${PROCD_OUT:-$here/.cache/procd}
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
began=$(date +%s)
t=$(mktemp -d)
toolpid=
procdpid=
cleanup() {
	[ -z "$toolpid" ] || kill "$toolpid" 2>/dev/null || true
	[ -z "$procdpid" ] || kill "$procdpid" 2>/dev/null || true
	chmod -R u+w "$t" 2>/dev/null; rm -rf "$t"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fails=0
pass() { echo "ok:   $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { if eval "$2"; then pass "$1"; else fail "$1"; fi; }
flog() { cat "$t/log"; fail "$1"; }   # a command that logged to $t/log failed
step() { echo "== $* ($(( $(date +%s) - began ))s)"; }
# skip WHAT: a step that cannot run here, noted for make test's last line
skip() { echo "SKIP: $*"; [ -z "${PINHOLE_SKIPS:-}" ] || echo "$*" >> "$PINHOLE_SKIPS"; }

if [ ! -x "$tools/apk" ] || [ ! -x "$tools/opkg-cl" ]; then
	sh "$shared/build-pkgtools.sh" "$pkgtools" > "$t/pkgtools.log" 2>&1 &
	toolpid=$!
fi
# The real procd needs root (namespaces); without root step 7 is skipped.
if [ "$(id -u)" = 0 ] && [ ! -x "$procd/sbin/procd" ]; then
	sh "$shared/build-procd.sh" "$procd" > "$t/procd.log" 2>&1 &
	procdpid=$!
fi

step "1. reproducible cross builds ($version, $commit)"
D=$t/dist
DIST=$D build/cross.sh "$version" "$commit"
DIST=$t/again build/cross.sh "$version" "$commit" > /dev/null
same=0; all=0
for f in "$D"/*/pinhole; do
	all=$((all + 1))
	arch=$(basename "$(dirname "$f")")
	if cmp -s "$f" "$t/again/$arch/pinhole"; then same=$((same + 1)); else fail "$arch: a second build differs"; fi
done
[ "$same" = "$all" ] && pass "all $all targets built twice are byte-identical"
mkdir "$t/src"
# Tracked and untracked-but-not-ignored files: what a clone of this tree has.
git ls-files -z --cached --others --exclude-standard | xargs -0 tar --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$t/src"
(cd "$t/src" && GOCACHE="$t/gocache" DIST="$t/copy" ONLY=mipsel_24kc build/cross.sh "$version" "$commit") > /dev/null
check "mipsle from a copy of the tree at another path, empty build cache: byte-identical (sha256 $(sha256sum < "$D/mipsel_24kc/pinhole" | cut -c1-16))" \
	'cmp -s "$D/mipsel_24kc/pinhole" "$t/copy/mipsel_24kc/pinhole"'
chmod -R u+w "$t/gocache"; rm -rf "$t/gocache" "$t/src" "$t/copy" "$t/again"

step "2. packages for every target, reproducible"
if [ -n "$toolpid" ]; then
	if ! wait "$toolpid"; then
		toolpid=
		# Without root nothing installed cmake and friends: the rest of
		# the suite needs opkg and apk.
		lacking=
		for c in cc cmake pkg-config meson ninja; do command -v "$c" > /dev/null || lacking="$lacking $c"; done
		if [ "$(id -u)" != 0 ] && [ "${CI:-}" != true ] && [ -n "$lacking" ]; then
			skip "packages, size, opkg/apk installs, procd and systemd (building opkg and apk needs$lacking)"
			echo "pkg-test: cross builds passed; the rest skipped"
			exit 0
		fi
		cat "$t/pkgtools.log"; fail "build-pkgtools.sh"; exit 1
	fi
	toolpid=
fi
apk() { LD_LIBRARY_PATH="$tools" "$tools/apk" "$@"; }
DIST=$D build/package.sh "$tools" > /dev/null
check "$(ls "$D"/*.ipk | wc -l) .ipk and $(ls "$D"/*.apk | wc -l) .apk packages" '[ "$(ls "$D"/*.ipk "$D"/*.apk | wc -l)" = 16 ]'
# Building them all again would take as long again; the archive code is
# the same for every architecture, so the mipsel pair stands for all.
DIST=$D PKG_OUT=$t/pkg2 ONLY=mipsel_24kc build/package.sh "$tools" > /dev/null
for f in "$t"/pkg2/*; do
	check "$(basename "$f") built twice is byte-identical" 'cmp -s "$f" "$D/$(basename "$f")"'
done
tar -tzf "$D"/pinhole_*_mipsel_24kc.ipk > "$t/ipk-members"
check ".ipk is a gzip'd tar of ./debian-binary ./control.tar.gz ./data.tar.gz" \
	'[ "$(cat "$t/ipk-members" | tr "\n" " ")" = "./debian-binary ./control.tar.gz ./data.tar.gz " ]'
# Packages of later versions whose default config differs, for the upgrades.
sed 's/^name: openwrt$/name: openwrt-v2/' openwrt/files/agent.yaml > "$t/agent-v2.yaml"
grep -q openwrt-v2 "$t/agent-v2.yaml" || fail "openwrt/files/agent.yaml has no 'name: openwrt' line to vary"
PKG_VERSION=9.9.9 PKG_CONF=$t/agent-v2.yaml PKG_OUT=$t/v2 ONLY="mipsel_24kc" DIST=$D build/package.sh "$tools" > /dev/null
PKG_VERSION=9.9.10 PKG_CONF=$t/agent-v2.yaml PKG_OUT=$t/v3 ONLY="mipsel_24kc" DIST=$D build/package.sh "$tools" > /dev/null
ipk1=$(ls "$D"/pinhole_*_mipsel_24kc.ipk); ipk2=$(ls "$t"/v2/*.ipk); ipk3=$(ls "$t"/v3/*.ipk)
apk1=$(ls "$D"/pinhole-*_mipsel_24kc.apk); apk2=$(ls "$t"/v2/*.apk); apk3=$(ls "$t"/v3/*.apk)
ipkwrong=$(ls "$D"/pinhole_*_mips_24kc.ipk); apkwrong=$(ls "$D"/pinhole-*_mips_24kc.apk)
v1=$(basename "$ipk1" | sed 's/^pinhole_\(.*\)_mipsel_24kc.ipk$/\1/')

step "3. size report and budget"
if DIST=$D build/size.sh > "$t/size.txt" 2>&1; then cat "$t/size.txt"; pass "size budget"; else cat "$t/size.txt"; fail "size budget"; fi

step "4. router binaries under qemu-user"
mkdir -p "$t/cfg"
cp configs/agent.yaml configs/relay.yaml "$t/cfg/"
"$D/x86_64/pinhole" keygen > "$t/cfg/agent.key"
"$D/x86_64/pinhole" keygen > "$t/cfg/relay.key"
for spec in qemu-mipsel-static:mipsel_24kc qemu-mips-static:mips_24kc qemu-arm-static:arm_cortex-a7_neon-vfpv4 \
	qemu-arm-static:arm_arm926ej-s qemu-aarch64-static:aarch64_generic; do
	q=${spec%%:*}; arch=${spec#*:}
	if ! command -v "$q" >/dev/null; then
		if [ "${CI:-}" = true ]; then fail "$q missing (apt-get install qemu-user-static)"; else skip "router binaries under qemu-user: $q not installed"; fi
		continue
	fi
	out=$("$q" "$D/$arch/pinhole" version 2>&1) || true
	check "$arch under $q: $out" 'echo "$out" | grep -q "^pinhole $version (commit $commit"'
	check "$arch under $q: check of configs/agent.yaml and configs/relay.yaml" \
		'"$q" "$D/$arch/pinhole" check -c "$t/cfg/agent.yaml" >/dev/null && "$q" "$D/$arch/pinhole" check -c "$t/cfg/relay.yaml" >/dev/null'
done
if PINHOLE_DIST=$D go test -count=1 -v -run '^TestQEMUTunnel$' ./build > "$t/qemu.txt" 2>&1; then
	sed -n 's/^ *qemu_test.go:[0-9]*: /ok:   tunnel: /p; s/^ *--- SKIP: TestQEMUTunnel\/\([^ ]*\).*/SKIP: tunnel: \1/p' "$t/qemu.txt"
else
	cat "$t/qemu.txt"; fail "TestQEMUTunnel"
fi

step "5a. opkg (OpenWrt <= 24.10), offline root: install $v1, upgrade to 9.9.9-r1 and 9.9.10-r1, remove"
printf 'dest root /\narch all 1\narch noarch 1\narch mipsel_24kc 10\n' > "$t/opkg.conf"
opkgroot() {
	mkdir -p "$1/var/lock" "$1/usr/lib/opkg/info" "$1/tmp"
	printf 'Package: libc\nVersion: 1.2.5-r4\nStatus: install user installed\nArchitecture: mipsel_24kc\nInstalled-Time: 0\n\n' > "$1/usr/lib/opkg/status"
	touch "$1/usr/lib/opkg/info/libc.list"
}
R=$t/opkg-root
opkgroot "$R"
opkg() { IPKG_INSTROOT="$R" "$tools/opkg-cl" -f "$t/opkg.conf" -o "$R" -t "$R/tmp" --force-postinstall "$@" > "$t/log" 2>&1; }
opkg install "$ipk1" || flog "opkg install"
check "opkg: /usr/bin/pinhole is the mipsel build" 'cmp -s "$R/usr/bin/pinhole" "$D/mipsel_24kc/pinhole"'
check "opkg: /etc/init.d/pinhole installed, executable" '[ -x "$R/etc/init.d/pinhole" ]'
check "opkg: /lib/upgrade/keep.d/pinhole keeps /etc/pinhole/ (the agent key) across sysupgrade" 'grep -qx /etc/pinhole/ "$R/lib/upgrade/keep.d/pinhole"'
check "opkg: /etc/pinhole/agent.yaml installed, mode 600, listed as a conffile" \
	'[ "$(stat -c %a "$R/etc/pinhole/agent.yaml")" = 600 ] && grep -q "^ */etc/pinhole/agent.yaml [0-9a-f]" "$R/usr/lib/opkg/status"'
check "opkg: postinst enabled the service (rc.d/S95pinhole, K10pinhole)" '[ -L "$R/etc/rc.d/S95pinhole" ] && [ -L "$R/etc/rc.d/K10pinhole" ]'
echo "# edited by the user" >> "$R/etc/pinhole/agent.yaml"
opkg install "$ipk2" || flog "opkg upgrade"
check "opkg upgrade: now 9.9.9-r1" 'grep -A2 "^Package: pinhole" "$R/usr/lib/opkg/status" | grep -q "Version: 9.9.9-r1"'
check "opkg upgrade: the user's edit is kept" 'grep -q "edited by the user" "$R/etc/pinhole/agent.yaml"'
check "opkg upgrade: the new default lands beside it (agent.yaml-opkg)" 'grep -q "openwrt-v2" "$R/etc/pinhole/agent.yaml-opkg"'
check "opkg upgrade: still enabled" '[ -L "$R/etc/rc.d/S95pinhole" ]'
rm "$R/etc/rc.d/S95pinhole" "$R/etc/rc.d/K10pinhole"   # service pinhole disable
opkg install "$ipk3" || flog "opkg upgrade"
check "opkg upgrade of a disabled service: stays disabled" '[ ! -e "$R/etc/rc.d/S95pinhole" ]'
ln -s ../init.d/pinhole "$R/etc/rc.d/S95pinhole"   # service pinhole enable
opkg remove pinhole || flog "opkg remove"
check "opkg remove: binary and init script gone" '[ ! -e "$R/usr/bin/pinhole" ] && [ ! -e "$R/etc/init.d/pinhole" ]'
check "opkg remove: prerm disabled the service" '[ ! -e "$R/etc/rc.d/S95pinhole" ]'
check "opkg remove: the modified config is kept" 'grep -q "edited by the user" "$R/etc/pinhole/agent.yaml"'
R=$t/opkg-root2
opkgroot "$R"
if opkg install "$ipkwrong"; then fail "opkg accepted a mips_24kc package on mipsel_24kc"; else
	msg=$(grep -m1 -o "incompatible with the architectures configured" "$t/log" || true)
	check "opkg refuses the wrong architecture: \"$msg\"" '[ -n "$msg" ] && [ ! -e "$R/usr/bin/pinhole" ]'
fi

step "5b. apk (OpenWrt >= 25.12), scripts chrooted as on a router: install, upgrade twice, remove"
apkroot() {
	mkdir -p "$1/etc/apk" "$1/bin" "$1/tmp" "$1/etc/rc.d"
	echo mipsel_24kc > "$1/etc/apk/arch"
	cp "$(command -v busybox)" "$1/bin/busybox"
	for app in $(busybox --list); do [ -e "$1/bin/$app" ] || ln -s busybox "$1/bin/$app"; done
	# Stand-in for OpenWrt's rc.common: records each action and keeps the
	# rc.d links the way `enable`/`disable`/`enabled` do.
	cat > "$1/etc/rc.common" <<'EOS'
#!/bin/sh
initscript=$1 action=$2
name=${initscript##*/}
echo "$name $action" >> /tmp/rc.log
START=$(sed -n 's/^START=//p' "$initscript"); STOP=$(sed -n 's/^STOP=//p' "$initscript")
case $action in
enable) ln -sf "../init.d/$name" "/etc/rc.d/S$START$name"; ln -sf "../init.d/$name" "/etc/rc.d/K$STOP$name";;
disable) rm -f "/etc/rc.d/S$START$name" "/etc/rc.d/K$STOP$name";;
enabled) [ -L "/etc/rc.d/S$START$name" ];;
esac
EOS
	chmod 0755 "$1/etc/rc.common"
}
A=$t/apk-root
apkroot "$A"
apkr() { apk --root "$A" --allow-untrusted --no-network "$@" > "$t/log" 2>&1; }
rclog() { tr '\n' ' ' < "$A/tmp/rc.log" | sed 's/ $//'; : > "$A/tmp/rc.log"; }
apkr add --initdb "$apk1" || flog "apk add"
check "apk: /usr/bin/pinhole is the mipsel build" 'cmp -s "$A/usr/bin/pinhole" "$D/mipsel_24kc/pinhole"'
check "apk: init script and default config (mode 600) installed" \
	'[ -x "$A/etc/init.d/pinhole" ] && [ "$(stat -c %a "$A/etc/pinhole/agent.yaml")" = 600 ]'
check "apk: sysupgrade metadata: /lib/apk/packages/pinhole.conffiles_static has the config and its sha256" \
	'[ "$(cat "$A/lib/apk/packages/pinhole.conffiles_static")" = "/etc/pinhole/agent.yaml $(sha256sum < "$A/etc/pinhole/agent.yaml" | cut -d" " -f1)" ] && grep -qx /etc/init.d/pinhole "$A/lib/apk/packages/pinhole.list"'
got=$(rclog)
check "apk post-install: enable, start (got: $got)" '[ "$got" = "pinhole enable pinhole start" ] && [ -L "$A/etc/rc.d/S95pinhole" ]'
echo "# edited by the user" >> "$A/etc/pinhole/agent.yaml"
apkr add "$apk2" || flog "apk upgrade"
got=$(rclog)
check "apk post-upgrade of an enabled service: restart, not enable (got: $got)" '[ "$got" = "pinhole enabled pinhole restart" ]'
check "apk upgrade: now 9.9.9-r1" 'grep -q "9.9.9-r1" "$t/log"'
check "apk upgrade: the user's edit is kept" 'grep -q "edited by the user" "$A/etc/pinhole/agent.yaml"'
check "apk upgrade: the new default lands beside it (agent.yaml.apk-new)" 'grep -q "openwrt-v2" "$A/etc/pinhole/agent.yaml.apk-new"'
chroot "$A" /etc/init.d/pinhole disable; : > "$A/tmp/rc.log"
apkr add "$apk3" || flog "apk upgrade"
got=$(rclog)
check "apk post-upgrade of a disabled service: neither enabled nor started (got: $got)" \
	'[ "$got" = "pinhole enabled" ] && [ ! -e "$A/etc/rc.d/S95pinhole" ]'
chroot "$A" /etc/init.d/pinhole enable; : > "$A/tmp/rc.log"
apkr del pinhole || flog "apk del"
got=$(rclog)
check "apk pre-deinstall: stop, disable (got: $got)" '[ "$got" = "pinhole stop pinhole disable" ] && [ ! -e "$A/etc/rc.d/S95pinhole" ]'
check "apk del: binary gone" '[ ! -e "$A/usr/bin/pinhole" ]'
check "apk del: the modified config is kept" 'grep -q "edited by the user" "$A/etc/pinhole/agent.yaml"'
A=$t/apk-root2
apkroot "$A"
if apkr add --initdb "$apkwrong"; then fail "apk accepted a mips_24kc package on mipsel_24kc"; else
	msg=$(grep -m1 "arch: mips_24kc" "$t/log" | sed 's/^ *//' || true)
	check "apk refuses the wrong architecture: \"$msg\"" '[ -n "$msg" ] && [ ! -e "$A/usr/bin/pinhole" ]'
fi

step "6. the service under the real procd"
if [ "$(id -u)" != 0 ]; then
	if [ "${CI:-}" = true ]; then fail "procd test needs root"; else skip "the service under the real procd: needs root (namespaces)"; fi
else
	if [ -n "$procdpid" ]; then
		if ! wait "$procdpid"; then cat "$t/procd.log"; fail "build-procd.sh"; fi
		procdpid=
	fi
	[ -x "$procd/sbin/procd" ] && sh build/procd-test.sh "$procd" "$(ls "$D"/pinhole_*_x86_64.ipk)" || fail "procd"
fi

step "7. the relay's systemd unit under the real systemd"
if [ "$(id -u)" != 0 ]; then
	if [ "${CI:-}" = true ]; then fail "systemd test needs root"; else skip "the relay's unit under the real systemd: needs root (namespaces)"; fi
elif [ ! -x /lib/systemd/systemd ] && [ "${CI:-}" != true ]; then
	skip "the relay's unit under the real systemd: systemd not installed"
else
	sh build/systemd-test.sh "$D/x86_64/pinhole" || fail "systemd"
fi

step "done"
if [ "$fails" -gt 0 ]; then echo "pkg-test: $fails failed"; exit 1; fi
echo "pkg-test: all passed in $(( $(date +%s) - began ))s"
