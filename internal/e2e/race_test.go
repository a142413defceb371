//go:build race

package e2e

// raceDetector is true under -race, which slows the tunnel some twenty
// times: the heaviest tests move less data under it, and load tests pace
// themselves down to what the in-process relay can serve.
const raceDetector = true
