//go:build race

package e2e

// raceBuild: the race detector slows the in-process relay several times,
// so load tests pace themselves down to what it can serve.
const raceBuild = true
