package confkit

// KCP is the tuning of KCP sessions, the same section on agent and relay.
// Both ends of a link should agree: a window or MTU mismatch works but
// wastes the larger side's buffers.
type KCP struct {
	Mode         KCPMode // ikcp_nodelay preset (default fast3)
	MTU          int     // bytes per UDP datagram, sealing included (576-1500)
	SendWindow   int     // packets in flight (32-32768)
	RecvWindow   int     // packets (32-32768)
	DataShards   int     // FEC data shards (0-64; 0 and 0 = FEC off)
	ParityShards int     // FEC parity shards (0-64)
}

// KCPMode is a preset of ikcp_nodelay parameters, named as kcptun names
// them: normal keeps KCP's conservative timers, fast3 retransmits
// aggressively, which a tunnel over a lossy access link wants.
type KCPMode uint8

const (
	KCPNormal KCPMode = iota
	KCPFast
	KCPFast2
	KCPFast3
)

var kcpModeNames = []string{KCPNormal: "normal", KCPFast: "fast", KCPFast2: "fast2", KCPFast3: "fast3"}

func (k KCPMode) String() string                { return enumString(kcpModeNames, k) }
func (k KCPMode) MarshalText() ([]byte, error)  { return []byte(k.String()), nil }
func (k *KCPMode) UnmarshalText(b []byte) error { return enumParse(kcpModeNames, k, b) }

// Limits of the kcp section. 576 is the minimum IPv4 datagram every host
// must accept (RFC 791) and 1500 the Ethernet MTU; a KCP window below 32
// packets starves even a slow link, and 32768 packets of 1500 bytes is
// already 48 MiB per direction, more than a router has.
const (
	MinMTU, MaxMTU       = 576, 1500
	MinWindow, MaxWindow = 32, 32768
	MaxShards            = 64
)

// DefaultKCP is fast3 with 1024-packet windows: about 1.3 MiB in flight
// per direction at MTU 1350, enough for ~100 Mbit/s at 100 ms RTT, and
// 1350 leaves room for PPPoE and tunnel headers under a 1500 MTU.
func DefaultKCP() KCP {
	return KCP{Mode: KCPFast3, MTU: 1350, SendWindow: 1024, RecvWindow: 1024}
}

// KCP reads the optional "kcp" section.
func (m *Map) KCP() KCP {
	k := DefaultKCP()
	sec := m.Sub("kcp")
	sec.Enum("mode", &k.Mode)
	k.MTU = sec.Int("mtu", k.MTU, MinMTU, MaxMTU)
	k.SendWindow = sec.Int("send_window", k.SendWindow, MinWindow, MaxWindow)
	k.RecvWindow = sec.Int("recv_window", k.RecvWindow, MinWindow, MaxWindow)
	// -1 marks a value already reported as wrong: no pairing complaint.
	data := sec.Int("data_shards", -1, 0, MaxShards)
	parity := sec.Int("parity_shards", -1, 0, MaxShards)
	k.DataShards, k.ParityShards = max(data, 0), max(parity, 0)
	if (data < 0 && sec.Has("data_shards")) || (parity < 0 && sec.Has("parity_shards")) {
		return k
	}
	// Blame the one that is set: that is the line the operator edited.
	switch {
	case k.DataShards != 0 && k.ParityShards == 0:
		sec.Errorf("data_shards", "%d needs parity_shards too (both 0 turns FEC off)", k.DataShards)
	case k.DataShards == 0 && k.ParityShards != 0:
		sec.Errorf("parity_shards", "%d needs data_shards too (both 0 turns FEC off)", k.ParityShards)
	}
	return k
}
