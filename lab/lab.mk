# NAT lab targets, included by the top Makefile. The lab needs root,
# iproute2, nftables, conntrack and ethtool (qemu-user-static for the
# cross-built agents); without root its tests print SKIP (and
# fail when CI=true, because CI must run them).
.PHONY: lab-test lab-matrix lab-heartbeat

lab-test:
	$(GO) test -count=1 -timeout 10m ./lab/...

lab-matrix: build
	$(GO) run ./lab/cmd/matrix -bin $(BIN) -out docs/nat-matrix.md

# Keepalive cost and flush recovery behind 10, 30 and 120 s NAT timeouts
# (heartbeat auto) and with fixed 15 s and 25 s heartbeats: 10 minutes idle
# per row, rows in parallel, about 25 minutes in all (the 120 s lifetime
# takes 6 minutes to measure). Writes its section of docs/nat-matrix.md.
lab-heartbeat: build
	$(GO) run ./lab/cmd/heartbeat -bin $(BIN) -out docs/nat-matrix.md

TEST_EXTRA += lab-test
