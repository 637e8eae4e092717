//go:build !linux

package main

import "errors"

func holdLowLatency() (func(), error) {
	return nil, errors.New("--low-latency is only available on Linux (PM QoS /dev/cpu_dma_latency)")
}
