package demo_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ctibridge/ctibridge/demo"
)

// TestDemoOnce runs the newcomer's first command end to end: simulator,
// bridge, twenty scripted calls, and the check that every interaction
// reached the state the script expects.
func TestDemoOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errs bytes.Buffer
	if err := demo.Main(ctx, []string{"--once"}, &out, &errs); err != nil {
		t.Fatalf("demo --once: %v\n%s\n%s", err, out.String(), errs.String())
	}
	for _, want := range []string{"All 20 interactions are as the script expected", "Carla Contact", "Oliver Brit", "closed_abandoned", "/console/"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestDemoFromCXoneOnce: with --cxone no Studio event is sent at all; the
// calls play in the CXone simulator and every interaction still ends as
// scripted, the transfer and a call shorter than one poll included.
func TestDemoFromCXoneOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out, errs bytes.Buffer
	if err := demo.Main(ctx, []string{"--once", "--cxone"}, &out, &errs); err != nil {
		t.Fatalf("demo --once --cxone: %v\n%s\n%s", err, out.String(), errs.String())
	}
	for _, want := range []string{"All 5 interactions are as the script expected", "No Studio", "bwayne", "closed_abandoned"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
