package main

import (
	"fmt"
	"time"

	"github.com/tokenwatt/tokenwatt/loadgen"
)

// saturationFlags are the thresholds past which a one-second window
// counts as client-saturated (README, "When the client is the
// bottleneck"); 0 turns a signal off.
type saturationFlags struct {
	Late         float64       `name:"late" default:"0.01" help:"Saturated when more than this share of a second's open-loop sends (and at least two) leave more than 5ms behind schedule (0: off)."`
	CPU          float64       `name:"cpu" default:"0.95" help:"Saturated when the process uses this share of the CPUs it may run on (GOMAXPROCS) (0: off)."`
	SchedLatency time.Duration `name:"sched-latency" default:"2ms" help:"Saturated when the p99 of the time goroutines wait, runnable, for the Go scheduler exceeds this (0: off)."`
	RunqueueWait time.Duration `name:"runqueue-wait" default:"200us" help:"Saturated when this process's threads wait longer than this on average on the kernel's run queue each time they get a CPU: other work on the machine, or too little CPU for this one (Linux; 0: off)."`
	Lateness     time.Duration `name:"lateness" default:"5ms" help:"Saturated when the p99 of a second's client lateness (a chunk's arrival minus when the simulator wrote it; only against a simulator on this host with --stamp-chunks) exceeds this (0: off)."`
}

// thresholds are the flags as the run library takes them, where zero is
// the default and a negative value turns a signal off.
func (f *saturationFlags) thresholds() (loadgen.SaturationThresholds, error) {
	if f.Late < 0 || f.CPU < 0 || f.SchedLatency < 0 || f.RunqueueWait < 0 || f.Lateness < 0 {
		return loadgen.SaturationThresholds{}, fmt.Errorf("--saturation-* thresholds must not be negative (0 turns a signal off)")
	}
	off := func(v float64) float64 {
		if v == 0 {
			return -1
		}
		return v
	}
	offDur := func(d time.Duration) time.Duration {
		if d == 0 {
			return -1
		}
		return d
	}
	return loadgen.SaturationThresholds{LateShare: off(f.Late), CPU: off(f.CPU),
		SchedLatency: offDur(f.SchedLatency), RunqueueWait: offDur(f.RunqueueWait), Lateness: offDur(f.Lateness)}, nil
}
