// Package build holds the tests of the router builds themselves: the
// binaries build/cross.sh leaves in dist/, run under qemu-user as a router
// would run them. `make pkg-test` runs them with PINHOLE_DIST set; without
// it (as in `make unit`) they skip. The scripts beside this file cross-build,
// package and report sizes; see build/build.mk.
package build
