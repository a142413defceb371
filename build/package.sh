#!/bin/sh
# Builds OpenWrt packages from dist/<arch>/pinhole (build/cross.sh):
#   dist/pinhole_<version>_<arch>.ipk    opkg, OpenWrt up to 24.10: a gzip'd tar
#                                        of debian-binary, control.tar.gz and
#                                        data.tar.gz (opkg rejects the ar form)
#   dist/pinhole-<version>_<arch>.apk    apk-tools v3, OpenWrt 25.12 and later
# No OpenWrt SDK needed. Archives are reproducible: sorted names, owner 0,
# mtime from the commit, gzip without a timestamp.
# Usage: build/package.sh APK_TOOL_DIR   (the dir build-pkgtools.sh filled)
set -eu
cd "$(dirname "$0")/.."
. build/targets.sh
apkdir=${1:-}
pkgver=${PKG_VERSION:-0.1.$(git rev-list --count HEAD 2>/dev/null || echo 0)}
release=1
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

rtar() { # rtar OUT.tar.gz DIR: reproducible gzip'd tar of DIR's contents
	(cd "$2" && find . -mindepth 1 | LC_ALL=C sort | tar --no-recursion --owner=0 --group=0 --numeric-owner \
		--mtime="@$epoch" --format=gnu -cf - -T -) | gzip -n -9 > "$1"
}

stage() { # stage ARCH ROOT: the files every package installs
	install -D -m 0755 "dist/$1/pinhole" "$2/usr/bin/pinhole"
	install -D -m 0755 openwrt/files/pinhole.init "$2/etc/init.d/pinhole"
	install -D -m 0600 openwrt/files/agent.yaml "$2/etc/pinhole/agent.yaml"
}

echo "$PINHOLE_TARGETS" | while read -r arch goarch sub; do
	[ -n "$arch" ] || continue
	[ -x "dist/$arch/pinhole" ] || { echo "missing dist/$arch/pinhole: run build/cross.sh" >&2; exit 1; }
	root="$work/$arch/root"; ctrl="$work/$arch/control"; ipk="$work/$arch/ipk"
	mkdir -p "$ctrl" "$ipk"
	stage "$arch" "$root"
	size=$(du -sb "$root" | cut -f1)
	cat > "$ctrl/control" <<EOC
Package: pinhole
Version: $pkgver-r$release
Depends: libc
Source: pinhole
SourceName: pinhole
License: MIT
Section: net
Architecture: $arch
Installed-Size: $size
Description: Tunnel agent: publishes router services on a relay over encrypted
 KCP/UDP with a TCP fallback; one small static binary, run by procd.
EOC
	echo /etc/pinhole/agent.yaml > "$ctrl/conffiles"
	install -m 0755 openwrt/files/postinst "$ctrl/postinst"
	install -m 0755 openwrt/files/prerm "$ctrl/prerm"
	echo 2.0 > "$ipk/debian-binary"
	rtar "$ipk/control.tar.gz" "$ctrl"
	rtar "$ipk/data.tar.gz" "$root"
	(cd "$ipk" && printf '%s\n' ./debian-binary ./control.tar.gz ./data.tar.gz | tar --no-recursion --owner=0 --group=0 \
		--numeric-owner --mtime="@$epoch" --format=gnu -cf - -T -) | gzip -n -9 > "dist/pinhole_${pkgver}-r${release}_$arch.ipk"
	if [ -n "$apkdir" ]; then
		find "$root" -exec touch -h -d "@$epoch" {} +
		LD_LIBRARY_PATH="$apkdir" "$apkdir/apk" mkpkg \
			--info "name:pinhole" --info "version:$pkgver-r$release" --info "arch:$arch" \
			--info "description:Tunnel agent publishing router services on a relay over encrypted KCP/UDP" \
			--info "license:MIT" --info "origin:pinhole" --info "url:https://github.com/pinhole/pinhole" \
			--script "post-install:openwrt/files/postinst" --script "pre-deinstall:openwrt/files/prerm" \
			--files "$root" --output "dist/pinhole-${pkgver}-r${release}_$arch.apk"
	fi
	echo "packaged $arch"
done
