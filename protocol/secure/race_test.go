//go:build race

package secure

// raceDetector is true under -race, which slows x25519.go's field
// arithmetic some ten times and checks nothing in it (it shares no
// memory): TestX25519MatchesECDH runs fewer cases under it.
const raceDetector = true
