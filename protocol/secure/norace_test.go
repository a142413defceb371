//go:build !race

package secure

// raceDetector is true under -race; see race_test.go.
const raceDetector = false
