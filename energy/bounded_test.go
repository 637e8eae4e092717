package energy

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// One hung device costs the others nothing: they are read every time,
// the hung one is reported failed within the timeout and is not read
// again until its call returns.
func TestBoundedReaderIsolatesAHungDevice(t *testing.T) {
	release := make(chan struct{})
	var calls [3]atomic.Int32
	b := newBoundedReader(3, 50*time.Millisecond, func(i int) Reading {
		calls[i].Add(1)
		if i == 1 {
			<-release
		}
		return Reading{Time: time.Now(), EnergyJ: float64(i), PowerW: 100}
	})
	for round := range 3 {
		start := time.Now()
		rs := b.Read(t.Context(), nil)
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("round %d took %v", round, took)
		}
		if len(rs) != 3 || rs[0].Err != nil || rs[2].Err != nil || rs[2].EnergyJ != 2 {
			t.Fatalf("round %d: %+v", round, rs)
		}
		var to errReadTimeout
		if !errors.As(rs[1].Err, &to) {
			t.Fatalf("round %d: hung device: %+v", round, rs[1])
		}
	}
	if calls[1].Load() != 1 || calls[0].Load() != 3 {
		t.Fatalf("calls %d %d: the hung device was read again", calls[0].Load(), calls[1].Load())
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		rs := b.Read(t.Context(), nil)
		if rs[1].Err == nil && rs[1].EnergyJ == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the device never answered again: %+v", rs[1])
		}
	}
}
