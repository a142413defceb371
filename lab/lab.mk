# NAT lab targets, included by the top Makefile. The lab needs root,
# iproute2, nftables, conntrack and ethtool (qemu-user-static for the
# cross-built agents); without root its tests print SKIP (and
# fail when CI=true, because CI must run them).
.PHONY: lab-test lab-matrix

lab-test:
	$(GO) test -count=1 -timeout 10m ./lab/...

lab-matrix: build
	$(GO) run ./lab/cmd/matrix -bin $(BIN) -out docs/nat-matrix.md

TEST_EXTRA += lab-test
