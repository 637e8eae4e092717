package run

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/exporter"
	"github.com/tokenwatt/tokenwatt/loadgen"
)

// saturationWatch ticks a loadgen.SaturationMonitor every second while
// the run runs: the state goes to the metrics, to Run.Saturation for the
// progress line, to a warning the first time, and to the summary.
type saturationWatch struct {
	mon     *loadgen.SaturationMonitor
	metrics *exporter.Run
	latest  atomic.Pointer[loadgen.Saturation]
	quit    chan struct{}
	done    chan struct{}

	// The stamps whose clocks disagreed: warned of once.
	progress   *loadgen.Progress
	log        *slog.Logger
	skewWarned bool
}

func startSaturationWatch(r *loadgen.Runner, th loadgen.SaturationThresholds, m *exporter.Run, log *slog.Logger) *saturationWatch {
	w := &saturationWatch{mon: loadgen.NewSaturationMonitor(&r.Progress, th), metrics: m,
		quit: make(chan struct{}), done: make(chan struct{}), progress: &r.Progress, log: log}
	go w.loop(log)
	return w
}

// warnSkew warns, once, that stamped chunks arrived more than
// backends.MaxClockSkew before the simulator says it wrote them.
func (w *saturationWatch) warnSkew() {
	n := w.progress.ClockSkewed.Load()
	if w.skewWarned || n == 0 {
		return
	}
	w.skewWarned = true
	w.log.Warn(fmt.Sprintf("%d stamped chunks arrived more than %v before the simulator says it wrote them: its clock and this host's disagree, and their client lateness is left out (stamps need the simulator on this host)",
		n, backends.MaxClockSkew))
}

func (w *saturationWatch) loop(log *slog.Logger) {
	defer close(w.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	warned := false
	for {
		select {
		case now := <-t.C:
			st := w.mon.Tick(now)
			w.latest.Store(&st)
			w.metrics.SetClientSaturation(st.Saturated, st.CPU)
			if st.Saturated && !warned {
				warned = true
				log.Warn(fmt.Sprintf("the client is saturated (%s): latencies may describe the load generator, not the server", st.Reason))
			}
			w.warnSkew()
		case <-w.quit:
			return
		}
	}
}

// stop ends the monitoring, closing the last window, and says whether
// the client was ever saturated.
func (w *saturationWatch) stop() (saturated bool, summary string) {
	close(w.quit)
	<-w.done
	st := w.mon.Tick(time.Now())
	w.metrics.SetClientSaturation(st.Saturated, st.CPU)
	w.warnSkew()
	n, windows, worst := w.mon.Summary()
	if n == 0 {
		return false, ""
	}
	return true, fmt.Sprintf("the client was saturated in %d of %d one-second windows (worst: %s); latencies may describe the load generator, not the server", n, windows, worst)
}
