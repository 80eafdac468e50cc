package app

import (
	"testing"
	"time"
)

// TestZeroMeansOff: a setting's 0 (no limit, no grace) reaches
// issuer.Config as a negative value, which it reads as off; any other
// value passes unchanged.
func TestZeroMeansOff(t *testing.T) {
	t.Parallel()
	if got := zeroMeansOff(0.0); got >= 0 {
		t.Errorf("zeroMeansOff(0.0) = %v, want a negative value", got)
	}
	if got := zeroMeansOff(time.Duration(0)); got >= 0 {
		t.Errorf("zeroMeansOff(0s) = %v, want a negative duration", got)
	}
	for _, v := range []float64{0.5, 1, 60, 1e6} {
		if got := zeroMeansOff(v); got != v {
			t.Errorf("zeroMeansOff(%v) = %v, want it unchanged", v, got)
		}
	}
	if got := zeroMeansOff(30 * time.Second); got != 30*time.Second {
		t.Errorf("zeroMeansOff(30s) = %v, want it unchanged", got)
	}
}
