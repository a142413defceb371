# Router builds and packages, included by the top Makefile.
#   make cross      static, stripped, reproducible binaries in dist/<arch>/
#   make packages   dist/*.ipk (OpenWrt <= 24.10) and dist/*.apk (25.12+)
#   make size       size per target and package, mipsle breakdown, budget
#   make pkg-test   reproducibility, budget, qemu-user, opkg/apk installs,
#                   the service under the real procd (part of `make test`)
# opkg and apk are built once from ../shared/tools into .cache/pkgtools,
# procd, ubusd, logd and logread into .cache/procd (build/pkg-test.sh
# builds what is missing).
PKGTOOLS     := $(CURDIR)/.cache/pkgtools
PROCD_OUT    := $(CURDIR)/.cache/procd
SHARED_TOOLS ?= $(CURDIR)/../shared/tools

.PHONY: cross size packages pkgtools pkg-test

cross:
	build/cross.sh $(VERSION) $(COMMIT)

pkgtools:
	@[ -x $(PKGTOOLS)/bin/apk ] && [ -x $(PKGTOOLS)/bin/opkg-cl ] || sh $(SHARED_TOOLS)/build-pkgtools.sh $(PKGTOOLS)

packages: cross pkgtools
	rm -f dist/pinhole_*.ipk dist/pinhole-*.apk
	build/package.sh $(PKGTOOLS)/bin

size: packages
	build/size.sh

pkg-test:
	PKGTOOLS=$(PKGTOOLS) PROCD_OUT=$(PROCD_OUT) SHARED_TOOLS=$(SHARED_TOOLS) VERSION=$(VERSION) COMMIT=$(COMMIT) sh build/pkg-test.sh

TEST_EXTRA += pkg-test
