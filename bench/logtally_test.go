package bench

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// logTally counts the lines a fleet of agents logs, by message and by
// the reason or error attached, with digits masked so that addresses and
// durations do not make every line its own kind. It is how a benchmark
// with thousands of agents says what they went through (a relay link lost
// by silence, a probe socket refused for lack of descriptors) without
// keeping their logs.
type logTally struct {
	mu     sync.Mutex
	counts map[string]int
}

var (
	tallyMsg    = regexp.MustCompile(`msg=("(?:[^"\\]|\\.)*"|\S+)`)
	tallyReason = regexp.MustCompile(` (?:reason|err)=("(?:[^"\\]|\\.)*"|\S+)`)
	tallyDigits = regexp.MustCompile(`[0-9]+`)
)

func (l *logTally) Write(p []byte) (int, error) {
	line := string(p)
	key := "?"
	if m := tallyMsg.FindStringSubmatch(line); m != nil {
		key = strings.Trim(m[1], `"`)
	}
	if m := tallyReason.FindStringSubmatch(line); m != nil {
		key += ": " + tallyDigits.ReplaceAllString(strings.Trim(m[1], `"`), "#")
	}
	l.mu.Lock()
	if l.counts == nil {
		l.counts = map[string]int{}
	}
	l.counts[key]++
	l.mu.Unlock()
	return len(p), nil
}

// take returns the counts so far, most frequent first, and starts over.
func (l *logTally) take() string {
	l.mu.Lock()
	counts := l.counts
	l.counts = nil
	l.mu.Unlock()
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return counts[b] - counts[a] })
	var s strings.Builder
	for i, k := range keys {
		if i == 12 {
			fmt.Fprintf(&s, "; %d more kinds", len(keys)-i)
			break
		}
		fmt.Fprintf(&s, "; %d x %s", counts[k], k)
	}
	if s.Len() == 0 {
		return "none"
	}
	return s.String()[2:]
}

// matching counts the lines so far whose key starts with prefix.
func (l *logTally) matching(prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for k, c := range l.counts {
		if strings.HasPrefix(k, prefix) {
			n += c
		}
	}
	return n
}
