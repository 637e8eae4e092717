//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// openFilesLimit is this process's open-files limit (RLIMIT_NOFILE), soft
// and hard.
func openFilesLimit() (soft, hard uint64, ok bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, false
	}
	return uint64(lim.Cur), uint64(lim.Max), true
}

// raiseOpenFilesLimit raises the soft open-files limit to the hard limit,
// as Prometheus does: every request in flight holds a connection (two
// with --sim, whose server runs in this process), and a soft limit of
// 1024 caps a run long before most servers do. Go itself raises it to
// one under the hard limit at start-up (since Go 1.19); this takes the
// rest and says what it found, for the debug log.
func raiseOpenFilesLimit() string {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Sprintf("open-files limit: %v", err)
	}
	if lim.Cur >= lim.Max {
		return fmt.Sprintf("open-files limit %d, the hard limit", lim.Cur)
	}
	soft := lim.Cur
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Sprintf("open-files limit %d: raising it to the hard limit %d failed: %v", soft, lim.Max, err)
	}
	return fmt.Sprintf("raised the open-files limit from %d to the hard limit %d", soft, lim.Max)
}
