package splice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
)

type netErr struct{ timeout bool }

func (e netErr) Error() string   { return fmt.Sprintf("net error, timeout %v", e.timeout) }
func (e netErr) Timeout() bool   { return e.timeout }
func (e netErr) Temporary() bool { return false }

// asErr answers errors.As for a net.Error target with its inner error,
// without wrapping it.
type asErr struct{ inner net.Error }

func (e asErr) Error() string { return "as" }
func (e asErr) As(target any) bool {
	if p, ok := target.(*net.Error); ok && e.inner != nil {
		*p = e.inner
		return true
	}
	return false
}

// TestNetTimeoutMatchesErrorsAs compares NetTimeout with the errors.As
// check it replaces on trees of wrapped, joined and As-answering errors.
func TestNetTimeoutMatchesErrorsAs(t *testing.T) {
	timeout, other := netErr{true}, netErr{false}
	for _, err := range []error{
		nil,
		io.EOF,
		os.ErrDeadlineExceeded,
		context.DeadlineExceeded,
		timeout,
		other,
		&net.OpError{Op: "read", Net: "udp", Err: os.ErrDeadlineExceeded},
		&net.OpError{Op: "read", Net: "udp", Err: io.EOF},
		fmt.Errorf("wrapped: %w", timeout),
		fmt.Errorf("wrapped twice: %w", fmt.Errorf("once: %w", timeout)),
		fmt.Errorf("not wrapped: %v", timeout),
		errors.Join(io.EOF, timeout),
		errors.Join(other, timeout), // the first net.Error decides
		errors.Join(timeout, other),
		errors.Join(nil, io.EOF),
		fmt.Errorf("two: %w and %w", io.EOF, fmt.Errorf("in: %w", timeout)),
		asErr{timeout},
		asErr{other},
		asErr{},
		fmt.Errorf("wrapped as: %w", asErr{timeout}),
		errors.Join(asErr{}, other),
	} {
		var ne net.Error
		want := errors.As(err, &ne) && ne.Timeout()
		if got := NetTimeout(err); got != want {
			t.Errorf("NetTimeout(%v) = %v, errors.As says %v", err, got, want)
		}
	}
}
