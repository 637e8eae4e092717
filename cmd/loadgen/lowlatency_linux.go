package main

import (
	"encoding/binary"
	"fmt"
	"os"
)

// holdLowLatency asks the kernel's PM QoS interface to keep every CPU out
// of idle states whose exit latency exceeds 0 µs, for as long as the file
// stays open (the kernel drops the request when it is closed, also when
// the process dies). On a VM this replaces HLT, a VM exit whose wake-up
// costs up to a millisecond, with polling idle, so a request's hand-offs
// between goroutines on different CPUs stop adding that to TTFT and
// schedule lag. It costs CPU power while held, and needs root.
func holdLowLatency() (release func(), err error) {
	f, err := os.OpenFile("/dev/cpu_dma_latency", os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("--low-latency: %w (needs root)", err)
	}
	if err := binary.Write(f, binary.NativeEndian, int32(0)); err != nil {
		f.Close()
		return nil, fmt.Errorf("--low-latency: write /dev/cpu_dma_latency: %w", err)
	}
	return func() { f.Close() }, nil
}
