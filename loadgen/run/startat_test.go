package run

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/loadgen"
)

// syncBuffer is a log destination read once the run is over.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logTime is the time of the first log line holding msg.
func logTime(t *testing.T, logs, msg string) time.Time {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, msg) {
			continue
		}
		f, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		at, err := time.Parse(time.RFC3339Nano, f)
		if err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		return at
	}
	t.Fatalf("no log line with %q in\n%s", msg, logs)
	return time.Time{}
}

// TestStartAtIdleBaseline: with --start-at, the idle baseline is measured
// at the end of the wait, before the start: whole when there is time for
// it, shortened to the time left when there is less, none when less than
// minStartIdle is left; a start already past begins at once, late, and
// says so. Every request is sent from the start on.
func TestStartAtIdleBaseline(t *testing.T) {
	for _, c := range []struct {
		name     string
		ahead    time.Duration
		baseline time.Duration
		log      string
		idle     bool
	}{
		{"whole", 2500 * time.Millisecond, time.Second, "measuring idle GPU power for 1s before", true},
		{"shortened", 3 * time.Second, time.Minute, "idle baseline shortened from 1m0s to", true},
		{"past", -time.Second, time.Second, "no idle baseline: 0s left before --start-at", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(t, 6)
			var logs syncBuffer
			cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(&logs, t.Output()), nil))
			cfg.IdleBaseline, cfg.StartAt = c.baseline, time.Now().Add(c.ahead)
			cfg.Scenario.Warmup = 2
			r, err := Start(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			res, err := r.Run(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			if res.Requests != 6 || res.StopReason != loadgen.StopCount {
				t.Fatalf("result %+v", res)
			}
			if !strings.Contains(logs.String(), c.log) || (res.Idle != nil) != c.idle {
				t.Errorf("idle baseline %+v; want one: %v, and a log with %q", res.Idle, c.idle, c.log)
			}
			if c.idle {
				// It began at the end of the wait, not at once: a timer
				// may be late, never early.
				began := logTime(t, logs.String(), "measuring idle GPU power")
				if earliest := cfg.StartAt.Add(-c.baseline - 3*cfg.EnergyInterval - 10*time.Millisecond); began.Before(earliest) && c.baseline < c.ahead {
					t.Errorf("idle baseline measured from %v, %v before the start; want it at the end of the wait", began, cfg.StartAt.Sub(began))
				}
			}
			if c.ahead > 0 {
				if res.Start.Before(cfg.StartAt) {
					t.Errorf("first send %v, before the start %v", res.Start, cfg.StartAt)
				}
				t.Logf("first send %v after the start; late start %v", res.Start.Sub(cfg.StartAt), res.LateStart)
			} else if res.LateStart < -c.ahead || !strings.Contains(logs.String(), "had passed when the run was ready") {
				t.Errorf("late start %v, want %v or more, and a warning", res.LateStart, -c.ahead)
			}
			if s := res.Report.Settings.StartAt; s == nil || !s.Equal(cfg.StartAt) {
				t.Errorf("report.json start_at %v, want %v", s, cfg.StartAt)
			}
		})
	}
}
