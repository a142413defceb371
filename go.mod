module github.com/pinhole/pinhole

go 1.26.0

require (
	github.com/flynn/noise v1.1.0
	github.com/spf13/pflag v1.1.0
	golang.org/x/crypto v0.58.0
)

require golang.org/x/sys v0.49.0 // indirect
