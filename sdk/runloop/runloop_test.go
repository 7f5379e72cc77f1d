package runloop

import (
	"errors"
	"testing"

	"github.com/astrid-go/astrid/sdk/internal/loop"
)

func TestInitMarksExported(t *testing.T) {
	if !loop.Exported {
		t.Fatal("importing runloop did not mark the run export as linked")
	}
}

func TestRunMain(t *testing.T) {
	tests := []struct {
		name      string
		fn        func() error
		wantPanic string
	}{
		{"nil return is a normal end", func() error { return nil }, ""},
		{"error traps", func() error { return errors.New("bus gone") }, "sdk: run loop failed: bus gone"},
		{"no loop registered traps", nil, errNoLoop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := loop.Fn
			t.Cleanup(func() { loop.Fn = saved })
			loop.Fn = tt.fn
			var got string
			func() {
				defer func() {
					if r := recover(); r != nil {
						got, _ = r.(string)
					}
				}()
				runMain()
			}()
			if got != tt.wantPanic {
				t.Errorf("panic %q, want %q", got, tt.wantPanic)
			}
		})
	}
}
