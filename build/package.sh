#!/bin/sh
# Builds OpenWrt packages from $DIST/<arch>/pinhole (build/cross.sh; DIST
# defaults to dist) into $DIST, without the OpenWrt SDK:
#   pinhole_<version>_<arch>.ipk   opkg, OpenWrt up to 24.10: a gzip'd tar of
#                                  ./debian-binary, ./control.tar.gz and
#                                  ./data.tar.gz (opkg rejects the ar form)
#   pinhole-<version>_<arch>.apk   apk-tools v3 (`apk mkpkg`), OpenWrt 25.12+,
#                                  laid out like include/package-pack.mk does:
#                                  /lib/apk/packages/pinhole.{list,conffiles,
#                                  conffiles_static} (sysupgrade keeps the
#                                  conffiles listed there), post-install,
#                                  post-upgrade (PKG_UPGRADE=1) and
#                                  pre-deinstall scripts.
# Archives are reproducible: sorted names, owner root, mtime from the commit,
# gzip without a timestamp.
# Usage: build/package.sh [APK_TOOL_DIR]   (the bin dir build-pkgtools.sh
#        fills; without it only .ipk files are made)
#   PKG_VERSION=1.2.3   version (default 0.1.<commit count>), release -r1
#   PKG_CONF=file       default agent.yaml (default openwrt/files/agent.yaml)
#   PKG_OUT=dir         output directory (default $DIST)
#   ONLY="mipsel_24kc"  package only these architectures
set -eu
cd "$(dirname "$0")/.."
. build/targets.sh
apkdir=${1:-}
pkgver=${PKG_VERSION:-0.1.$(git rev-list --count HEAD 2>/dev/null || echo 0)}
release=1
conf=${PKG_CONF:-openwrt/files/agent.yaml}
dist=${DIST:-dist}
out=${PKG_OUT:-$dist}
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
summary="Tunnel agent: publishes router services on a relay over encrypted KCP/UDP with a TCP fallback"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

rtar() { # rtar OUT.tar.gz DIR: reproducible gzip'd tar of DIR's contents
	(cd "$2" && find . -mindepth 1 | LC_ALL=C sort | tar --no-recursion --owner=0 --group=0 --numeric-owner \
		--mtime="@$epoch" --format=gnu -cf - -T -) | gzip -n -9 > "$1"
}

# apk mkpkg records owners by name: files staged by an ordinary user would
# install owned by "nobody". Run it as root, or as root in a user namespace.
asroot() { if [ "$(id -u)" = 0 ]; then "$@"; else unshare --map-root-user "$@"; fi; }

stage() { # stage ARCH ROOT: the files every package installs
	install -D -m 0755 "$dist/$1/pinhole" "$2/usr/bin/pinhole"
	install -D -m 0755 openwrt/files/pinhole.init "$2/etc/init.d/pinhole"
	install -D -m 0600 "$conf" "$2/etc/pinhole/agent.yaml"
	install -D -m 0644 openwrt/files/pinhole.keep "$2/lib/upgrade/keep.d/pinhole"
}

echo "$PINHOLE_TARGETS" | while read -r arch goarch sub; do
	[ -n "$arch" ] || continue
	case " ${ONLY:-$arch} " in *" $arch "*) ;; *) continue;; esac
	[ -x "$dist/$arch/pinhole" ] || { echo "missing $dist/$arch/pinhole: run build/cross.sh" >&2; exit 1; }
	root="$work/$arch/root"; ctrl="$work/$arch/control"; ipk="$work/$arch/ipk"; scripts="$work/$arch/scripts"
	mkdir -p "$ctrl" "$ipk" "$scripts"
	stage "$arch" "$root"

	# .ipk
	cat > "$ctrl/control" <<EOC
Package: pinhole
Version: $pkgver-r$release
Depends: libc
Source: pinhole
SourceName: pinhole
License: MIT
Section: net
URL: https://github.com/pinhole/pinhole
Architecture: $arch
Installed-Size: $(du -sb "$root" | cut -f1)
Description: $summary;
 one small static binary, run by procd.
EOC
	echo /etc/pinhole/agent.yaml > "$ctrl/conffiles"
	install -m 0755 openwrt/files/postinst "$ctrl/postinst"
	install -m 0755 openwrt/files/prerm "$ctrl/prerm"
	echo 2.0 > "$ipk/debian-binary"
	rtar "$ipk/control.tar.gz" "$ctrl"
	rtar "$ipk/data.tar.gz" "$root"
	(cd "$ipk" && printf '%s\n' ./debian-binary ./control.tar.gz ./data.tar.gz | tar --no-recursion --owner=0 --group=0 \
		--numeric-owner --mtime="@$epoch" --format=gnu -cf - -T -) | gzip -n -9 > "$out/pinhole_${pkgver}-r${release}_$arch.ipk"

	# .apk
	if [ -z "$apkdir" ]; then echo "packaged $arch (.ipk only)"; continue; fi
	meta="$root/lib/apk/packages"
	mkdir -p "$meta"
	(cd "$root" && find . \( -type f -o -type l \) -printf '/%P\n' | LC_ALL=C sort) > "$work/$arch/list"
	mv "$work/$arch/list" "$meta/pinhole.list"
	echo /etc/pinhole/agent.yaml > "$meta/pinhole.conffiles"
	echo "/etc/pinhole/agent.yaml $(sha256sum < "$root/etc/pinhole/agent.yaml" | cut -d' ' -f1)" > "$meta/pinhole.conffiles_static"
	cp openwrt/files/postinst "$scripts/post-install"
	{ echo '#!/bin/sh'; echo 'export PKG_UPGRADE=1'; sed '/^#!/d' openwrt/files/postinst; } > "$scripts/post-upgrade"
	cp openwrt/files/prerm "$scripts/pre-deinstall"
	find "$root" -exec touch -h -d "@$epoch" {} +
	asroot env LD_LIBRARY_PATH="$apkdir" "$apkdir/apk" mkpkg \
		--info "name:pinhole" --info "version:$pkgver-r$release" --info "arch:$arch" \
		--info "description:$summary" \
		--info "license:MIT" --info "origin:pinhole" --info "url:https://github.com/pinhole/pinhole" \
		--script "post-install:$scripts/post-install" --script "post-upgrade:$scripts/post-upgrade" \
		--script "pre-deinstall:$scripts/pre-deinstall" \
		--files "$root" --output "$out/pinhole-${pkgver}-r${release}_$arch.apk"
	echo "packaged $arch"
done
