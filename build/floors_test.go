package build

import (
	"os/exec"
	"strings"
	"testing"
)

// The package floors of docs/architecture.md, checked with `go list -deps`
// so a layering mistake fails the build instead of waiting for review:
//
//	cmd/pinhole            the one main
//	agent/, relay/         the two roles; never import each other
//	internal/{link,udpio,splice,admin,slog,jsonw}   shared machinery; no role, no config
//	protocol/...           what both ends agree on; std only (secure: +x/crypto)
//
// and the release binary links no test support, no net/http and no
// encoding/json or log/slog; the router builds link no crypto/ecdh.

const module = "github.com/pinhole/pinhole"

// deps returns the transitive imports of pkg (pkg itself included).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+"/"+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// isStd reports whether an import path belongs to the standard library
// (no dot in its first element), including its vendored x/ packages.
func isStd(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".") || strings.HasPrefix(p, "vendor/")
}

func TestProtocolFloors(t *testing.T) {
	cases := []struct {
		pkg     string
		allowed []string // import path prefixes allowed beyond std
	}{
		{"protocol", []string{module + "/protocol"}},
		{"protocol/stun", []string{module + "/protocol/stun"}},
		{"protocol/secure", []string{module + "/protocol", "golang.org/x/crypto", "golang.org/x/sys/cpu"}},
	}
	for _, c := range cases {
		for _, d := range deps(t, c.pkg) {
			if isStd(d) || hasPrefix(d, c.allowed) {
				continue
			}
			t.Errorf("%s imports %s: protocol packages stay std-only (secure: x/crypto)", c.pkg, d)
		}
	}
}

func TestSharedMachineryFloors(t *testing.T) {
	forbidden := []string{module + "/agent", module + "/relay", module + "/cmd"} // cmd/pinhole/internal/config included
	for _, pkg := range []string{"internal/link", "internal/udpio", "internal/splice", "internal/admin", "internal/slog", "internal/jsonw"} {
		for _, d := range deps(t, pkg) {
			if hasPrefix(d, forbidden) {
				t.Errorf("%s imports %s: shared machinery never imports a role or the config", pkg, d)
			}
		}
	}
}

func TestRolesDoNotImportEachOther(t *testing.T) {
	for _, c := range [][2]string{{"agent", "relay"}, {"relay", "agent"}} {
		for _, d := range deps(t, c[0]) {
			if d == module+"/"+c[1] || strings.HasPrefix(d, module+"/"+c[1]+"/") {
				t.Errorf("%s imports %s", c[0], d)
			}
		}
	}
}

func TestReleaseBinaryLinksNoTestSupport(t *testing.T) {
	for _, d := range deps(t, "cmd/pinhole") {
		switch {
		case d == "testing", d == "net/http", strings.HasPrefix(d, "net/http/"),
			d == module+"/internal/testenv", d == module+"/internal/netsim", d == module+"/internal/jsonw/jsonwtest":
			t.Errorf("the release binary links %s", d)
		}
	}
}

// TestReleaseBinaryLinksNoJSONReflection: log/slog (whose default
// handler reaches encoding/json's encoder) and encoding/json cost about
// 230 KB of the mipsle binary; internal/slog and internal/jsonw write the
// same bytes. A new import of either brings them all back.
func TestReleaseBinaryLinksNoJSONReflection(t *testing.T) {
	for _, d := range deps(t, "cmd/pinhole") {
		if d == "encoding/json" || d == "log/slog" {
			t.Errorf("the release binary links %s: use %s/internal/slog and internal/jsonw", d, module)
		}
	}
}

// TestRouterBinaryLinksNoECDH: crypto/ecdh's FIPS self-test links P-256
// and its 88 KB table, about 190 KB of a router binary. protocol/secure
// uses its own X25519 (x25519.go) on every router architecture but arm64;
// a new import of crypto/ecdh, or of x/crypto/curve25519 (which wraps it),
// brings them back.
func TestRouterBinaryLinksNoECDH(t *testing.T) {
	for _, goarch := range []string{"mipsle", "mips", "arm"} {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+"/cmd/pinhole")
		cmd.Env = append(cmd.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("GOARCH=%s go list -deps cmd/pinhole: %v", goarch, err)
		}
		for _, d := range strings.Fields(string(out)) {
			if d == "crypto/ecdh" || d == "crypto/internal/fips140/nistec" || d == "golang.org/x/crypto/curve25519" {
				t.Errorf("the %s binary links %s: use protocol/secure's x25519", goarch, d)
			}
		}
	}
}

func hasPrefix(p string, prefixes []string) bool {
	for _, x := range prefixes {
		if p == x || strings.HasPrefix(p, x+"/") {
			return true
		}
	}
	return false
}
