//go:build race

package e2e

// raceDetector is true under -race, which slows the tunnel some twenty
// times; the heaviest tests move less data under it.
const raceDetector = true
// raceBuild: the race detector slows the in-process relay several times,
// so load tests pace themselves down to what it can serve.
const raceBuild = true
