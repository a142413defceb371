# Router builds and packages, included by the top Makefile.
PKGTOOLS := $(CURDIR)/.cache/pkgtools
SHARED_TOOLS ?= $(CURDIR)/../shared/tools

.PHONY: cross size packages pkgtools pkg-test

cross:
	build/cross.sh $(VERSION) $(COMMIT)

pkgtools:
	@[ -x $(PKGTOOLS)/bin/apk ] && [ -x $(PKGTOOLS)/bin/opkg-cl ] || sh $(SHARED_TOOLS)/build-pkgtools.sh $(PKGTOOLS)

packages: cross pkgtools
	build/package.sh $(PKGTOOLS)/bin

size: packages
	build/size.sh

# Reproducibility, size budget, qemu runs, opkg/apk install tests, procd.
pkg-test: pkgtools
	sh build/pkg-test.sh

TEST_EXTRA += pkg-test
