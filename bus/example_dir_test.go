package bus_test

import (
	"os"
	"testing"
)

var exampleTempDir string

// exampleDir returns a temporary directory for examples, removed by
// TestMain.
func exampleDir() string {
	if exampleTempDir == "" {
		d, err := os.MkdirTemp("", "bus-example-")
		if err != nil {
			panic(err)
		}
		exampleTempDir = d
	}
	return exampleTempDir
}

func TestMain(m *testing.M) {
	m.Run()
	if exampleTempDir != "" {
		_ = os.RemoveAll(exampleTempDir)
	}
}
