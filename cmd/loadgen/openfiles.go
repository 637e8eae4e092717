package main

import (
	"fmt"
	"strings"

	"github.com/tokenwatt/tokenwatt/loadgen/run"
)

// openFilesLimitNamed names this process's open-files limit and how to
// raise it, for messages about connections that failed for want of file
// descriptors.
func openFilesLimitNamed() (limit, raise string) {
	soft, hard, ok := openFilesLimit()
	switch {
	case !ok:
		return "the open-files limit", "raise it"
	case soft < hard:
		return fmt.Sprintf("the open-files limit (%d)", soft), fmt.Sprintf("raise it up to the hard limit (ulimit -n %d)", hard)
	default:
		return fmt.Sprintf("the open-files limit (%d)", soft),
			"it is also the hard limit: raise that (as root: ulimit -Hn; systemd: LimitNOFILE=; /etc/security/limits.conf)"
	}
}

// openFilesWarnings are a finished run's warnings about connections that
// failed for want of file descriptors: the open-files limit, not the
// server, capped the run. The simulator's other accept errors (out of
// memory for sockets) are counted in a line of their own.
func openFilesWarnings(res *run.Result) []string {
	var ws []string
	ae := res.SimAcceptErrors
	if res.OpenFileErrors > 0 || ae.OpenFiles > 0 {
		var what []string
		if res.OpenFileErrors > 0 {
			what = append(what, fmt.Sprintf("%d request(s) failed with \"too many open files\"", res.OpenFileErrors))
		}
		if ae.OpenFiles > 0 {
			what = append(what, fmt.Sprintf("the simulator failed to accept connections %d time(s) (each retried)", ae.OpenFiles))
		}
		limit, raise := openFilesLimitNamed()
		ws = append(ws, fmt.Sprintf("%s, not the server, capped this run: %s; %s, or lower --concurrency or --rate",
			limit, strings.Join(what, " and "), raise))
	}
	if other := ae.Count - ae.OpenFiles; other > 0 {
		ws = append(ws, fmt.Sprintf("simulator: failed to accept connections %d time(s) (each retried; last: %v)", other, ae.Last))
	}
	return ws
}

// simAcceptWarning is the standalone simulator's note of its failed
// accepts since the count said was reported (empty: none).
func simAcceptWarning(now, said int64, openFiles bool, last error) string {
	if now <= said {
		return ""
	}
	s := fmt.Sprintf("simulator: failed to accept connections %d time(s), each retried (%d in all; last: %v)", now-said, now, last)
	if openFiles {
		limit, raise := openFilesLimitNamed()
		s += fmt.Sprintf("; %s was reached: %s", limit, raise)
	}
	return s
}
