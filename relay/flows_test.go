package relay

import (
	"net/netip"
	"testing"
)

// TestFlowEviction: a full table takes every new client, evicting first
// the oldest flow that never got an answer, then the least recently active.
func TestFlowEviction(t *testing.T) {
	r := &Relay{}
	ft := newFlowTable(&exposure{s: &session{r: r}})
	addr := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), 5353)
	}
	add := func(i int) *flow {
		ft.mu.Lock()
		defer ft.mu.Unlock()
		return ft.addLocked(addr(i), int64(i))
	}
	touch := func(f *flow) {
		ft.mu.Lock()
		ft.lru.MoveToFront(f.lruElem)
		ft.mu.Unlock()
	}
	flows := make([]*flow, maxFlows)
	for i := range flows {
		flows[i] = add(i)
	}
	// Answered flows 0 and 2: the oldest unanswered is now flow 1.
	ft.answered(flows[0])
	ft.answered(flows[2])
	add(maxFlows)
	if ft.flows[addr(1)] != nil || ft.flows[addr(0)] == nil || ft.flows[addr(2)] == nil {
		t.Fatalf("first eviction: flow 1 (oldest unanswered) still there = %v, want it gone and 0, 2 kept", ft.flows[addr(1)] != nil)
	}
	if got := r.stats.FlowsEvicted.Load(); got != 1 {
		t.Errorf("udp_flows_evicted = %d, want 1", got)
	}
	if !flows[1].stopped {
		t.Error("the evicted flow was not stopped")
	}
	// Every flow answered: the least recently active goes, and activity
	// (flow 0 touched after flow 2 was answered) counts.
	for _, f := range ft.flows {
		ft.answered(f)
	}
	touch(flows[0])
	back := ft.lru.Back().Value.(*flow)
	add(maxFlows + 1)
	if ft.flows[back.client] != nil {
		t.Errorf("least recently active flow %v was kept", back.client)
	}
	if ft.flows[addr(0)] == nil {
		t.Error("flow 0, just active, was evicted")
	}
	if n := len(ft.flows); n != maxFlows || ft.lru.Len() != maxFlows {
		t.Errorf("table holds %d flows (lru %d), want %d", n, ft.lru.Len(), maxFlows)
	}
}
