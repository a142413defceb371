//go:build !race

package e2e

// raceDetector is true under -race; see race_test.go.
const raceDetector = false
