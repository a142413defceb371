package relay

import (
	"testing"
	"time"
)

// TestReclaimerPolicy: a reclaim runs once the estimated garbage reaches
// reclaimMin (and a quarter of the live heap, small in a test), not
// before, and not again within reclaimEvery however much is freed.
func TestReclaimerPolicy(t *testing.T) {
	var c reclaimer
	now := time.Now()
	c.add(reclaimMin - 1)
	c.check(now)
	if n := c.count.Load(); n != 0 {
		t.Fatalf("%d reclaims for less than reclaimMin freed", n)
	}
	c.add(1)
	c.check(now)
	if n := c.count.Load(); n != 1 {
		t.Fatalf("%d reclaims after reclaimMin freed, want 1", n)
	}
	if f := c.freed.Load(); f != 0 {
		t.Fatalf("estimate %d after a reclaim, want 0", f)
	}
	c.add(100 * reclaimMin)
	c.check(now.Add(reclaimEvery - time.Second))
	if n := c.count.Load(); n != 1 {
		t.Fatalf("%d reclaims within reclaimEvery, want 1", n)
	}
	c.check(now.Add(reclaimEvery))
	if n := c.count.Load(); n != 2 {
		t.Fatalf("%d reclaims after reclaimEvery, want 2", n)
	}
}
