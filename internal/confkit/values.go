package confkit

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The value parsers below take the text of one scalar and return an error
// phrased to follow "FIELD: ", without the field name. They are exported
// for flags that accept the same syntax as the files.

var nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)

// CheckName accepts the names of agents and exposures: 1-63 letters,
// digits, '.', '_' or '-', so they are safe in logs, status output and
// file names without quoting.
func CheckName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%q must be 1-63 letters, digits, '.', '_' or '-'", s)
	}
	return nil
}

// OneOf returns the index of s in names or an error listing them (and the
// closest one, for a typo). Empty names are skipped, so an enum whose zero
// value means "unset" can index its names directly.
func OneOf(s string, names ...string) (int, error) {
	var valid []string
	for i, n := range names {
		if n == "" {
			continue
		}
		if s == n {
			return i, nil
		}
		valid = append(valid, n)
	}
	msg := fmt.Sprintf("%q is not one of %s", s, strings.Join(valid, ", "))
	if c := closest(s, valid); c != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", c)
	}
	return 0, errors.New(msg)
}

// durationExamples ends every duration error: the operator's fix is
// nearly always to add a unit.
const durationExamples = "(examples: 15s, 2m, 1h)"

// ParseDuration reads a Go duration ("15s", "2m", "1h30m"). A bare number
// is refused rather than guessed as seconds; negative values are refused.
func ParseDuration(s string) (time.Duration, error) {
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return 0, fmt.Errorf("%q has no unit %s", s, durationExamples)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration %s", s, durationExamples)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// FormatDuration prints d the way a config would say it: 10m, not 10m0s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// sizeUnits are the suffixes ParseSize knows, SI and IEC, matched without
// regard to case. Lone K/M/G are refused: which one is meant is a guess.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9},
	{"b", 1},
}

// ParseSize reads a byte count: "24MiB", "64MB", "512KiB" or a plain
// number of bytes.
func ParseSize(s string) (int64, error) {
	bad := fmt.Errorf("%q is not a size (examples: 24MiB, 64MB, 25165824)", s)
	num, mult := strings.TrimSpace(s), int64(1)
	lower := strings.ToLower(num)
	for _, u := range sizeUnits {
		if strings.HasSuffix(lower, u.suffix) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.mult
			break
		}
	}
	if num == "" || strings.ContainsAny(num, "+-") {
		return 0, bad
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, bad
	}
	if v > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return v * mult, nil
}

// FormatSize prints n in the largest IEC unit that divides it.
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.m == 0 {
			return fmt.Sprintf("%d%s", n/u.m, u.s)
		}
	}
	return strconv.FormatInt(n, 10)
}

// ParsePort reads a decimal port in lo..65535 (lo is 0 or 1). Service
// names like "http" are refused: looking them up is not syntax checking.
func ParsePort(s string, lo int) (uint16, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("port %q is not a number", s)
	}
	p, err := strconv.Atoi(s)
	if err != nil || p < lo || p > 65535 {
		return 0, fmt.Errorf("port %s out of range (%d-65535)", strings.TrimLeft(s, "0")+zeroIfEmpty(s), lo)
	}
	return uint16(p), nil
}

func zeroIfEmpty(s string) string {
	if strings.TrimLeft(s, "0") == "" {
		return "0"
	}
	return ""
}

// CheckInt reads a decimal integer in lo..hi.
func CheckInt(s string, lo, hi int) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, fmt.Errorf("%s is out of range (%d-%d)", s, lo, hi)
		}
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%d is out of range (%d-%d)", v, lo, hi)
	}
	return v, nil
}

// ParseBool reads true/false (and the YAML 1.1 words yes/no/on/off, which
// operators still write).
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true, nil
	case "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", s)
}
