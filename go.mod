module github.com/pinhole/pinhole

go 1.26.0

require (
	github.com/flynn/noise v1.1.0
	github.com/klauspost/reedsolomon v1.12.0
	github.com/spf13/pflag v1.1.0
	github.com/xtaci/kcp-go/v5 v5.6.72
	github.com/xtaci/smux v1.5.58
	golang.org/x/crypto v0.58.0
	golang.org/x/net v0.60.0
	golang.org/x/sys v0.49.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/klauspost/cpuid/v2 v2.2.6 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/tjfoc/gmsm v1.4.1 // indirect
	golang.org/x/time v0.14.0 // indirect
)

replace github.com/tjfoc/gmsm => ./internal/nosm4
