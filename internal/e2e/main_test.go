package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if pinholeBin != "" {
		os.RemoveAll(filepath.Dir(pinholeBin))
	}
	os.Exit(code)
}
