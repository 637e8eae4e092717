package run

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
	"github.com/tokenwatt/tokenwatt/report"
)

// A run with stages: its records carry their stage, report.json has each
// stage's plan, span and counts (energy included), the row has no one
// rate or concurrency, and the stage gauge follows the run: a stage while
// it runs, -1 once it has ended.
func TestRunWithStages(t *testing.T) {
	cfg := testConfig(t, 0)
	cfg.Scenario.Concurrency = 0
	cfg.Scenario.Stages = []scenario.Stage{
		{Duration: 250 * time.Millisecond, Rate: 32}, // 8 arrivals
		{Duration: 250 * time.Millisecond, Concurrency: 2},
	}
	r, err := Start(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var mu sync.Mutex
	seen := map[float64]bool{}
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if v, ok := gaugeValue(t, r, "tokenwatt_stage"); ok {
				mu.Lock()
				seen[v] = true
				mu.Unlock()
			}
		}
	}()
	res, err := r.Run(t.Context())
	close(stop)
	<-polled
	if err != nil {
		t.Fatal(err)
	}
	if res.StopReason != loadgen.StopStages || res.OK != res.Requests || res.Requests < 9 {
		t.Fatalf("result: stop %q, %d requests, %d ok", res.StopReason, res.Requests, res.OK)
	}
	mu.Lock()
	if !seen[0] && !seen[1] {
		t.Errorf("tokenwatt_stage was never 0 or 1 while the run ran: %v", seen)
	}
	mu.Unlock()
	if got, ok := gaugeValue(t, r, "tokenwatt_stage"); !ok || got != -1 {
		t.Errorf("tokenwatt_stage %v (exported: %v) after the run, want -1", got, ok)
	}
	if n, err := testutil.GatherAndCount(r.metrics.Registry(), "tokenwatt_target_rate", "tokenwatt_target_concurrency"); n != 2 || err != nil {
		t.Errorf("%d target gauges (%v), want 2", n, err)
	}

	st := res.Report.Stages
	if len(st) != 2 {
		t.Fatalf("report has %d stages, want 2", len(st))
	}
	if s := st[0]; s.Spec != "250ms@32" || s.Rate == nil || *s.Rate != 32 || s.Requests != 8 || s.RanS != 0.25 ||
		s.ExpectedRequests == nil || *s.ExpectedRequests != 8 || s.SendRate == nil || *s.SendRate != 32 || s.Warning != "" || s.Started == nil {
		t.Errorf("open-loop stage %+v", s)
	}
	if s := st[1]; s.Spec != "250ms@c2" || s.Rate != nil || s.Concurrency != 2 || s.Requests < 1 || s.ExpectedRequests != nil || s.RanS != 0.25 {
		t.Errorf("closed-loop stage %+v", s)
	}
	for _, s := range st {
		if s.EnergyJ == nil || *s.EnergyJ <= 0 || s.JoulesPerOutputToken == nil || s.OutputTokens == nil || s.TTFTMeanS == nil || s.OK != s.Requests {
			t.Errorf("stage %d: energy %v J, %v J/token, %v tokens, ttft %v", s.Index, s.EnergyJ, s.JoulesPerOutputToken, s.OutputTokens, s.TTFTMeanS)
		}
	}
	if st[0].Requests+st[1].Requests != res.Requests {
		t.Errorf("stages hold %d+%d requests, the run %d", st[0].Requests, st[1].Requests, res.Requests)
	}
	if res.Report.Settings.Stages != "250ms@32,250ms@c2" || res.Row.RequestRate != nil || res.Row.Concurrency != nil || res.Row.RateWarning != "" {
		t.Errorf("settings.stages %q, row rate %v, concurrency %v, warning %q", res.Report.Settings.Stages, res.Row.RequestRate, res.Row.Concurrency, res.Row.RateWarning)
	}
	if rep, err := report.ReadReport(res.ReportPath); err != nil || len(rep.Stages) != 2 || rep.Stages[0].Requests != 8 {
		t.Fatalf("report.json: %v, %+v", err, rep)
	}
}

// gaugeValue is the value of the run's gauge called name, and whether it
// is exported. Safe from any goroutine.
func gaugeValue(t *testing.T, r *Run, name string) (float64, bool) {
	t.Helper()
	mfs, err := r.metrics.Registry().Gather()
	if err != nil {
		t.Error(err)
		return 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func TestStagesWarning(t *testing.T) {
	ten, seven, zero := 10.0, 7.0, 0.0
	short := report.StageStats{Index: 1, Spec: "1s@10", Rate: &ten, Requests: 7, SendRate: &seven, ExpectedRequests: &ten}
	if w := report.StageShortfall(&short, 0); w != "stage 1 (1s@10): sent 7 requests (7 req/s), its rate asks for 10" {
		t.Errorf("constant arrivals: %q", w)
	}
	// Poisson's √10 ≈ 3.2 standard deviation: 7 of 10 is chance.
	if w := report.StageShortfall(&short, 3.2); w != "" {
		t.Errorf("poisson arrivals: %q", w)
	}
	closed := report.StageStats{Index: 0, Spec: "1s@c4", Requests: 0, SendRate: &zero}
	if w := report.StageShortfall(&closed, 0); w != "" {
		t.Errorf("closed-loop stage: %q", w)
	}
	short.Warning = report.StageShortfall(&short, 0)
	w := stagesWarning([]report.StageStats{closed, short}, report.Pacing{Paced: 10, CapWaits: 5, ClientSaturated: true})
	for _, want := range []string{"stages below 95 % of their rate: stage 1 (1s@10)", "50 % of open-loop sends waited for an in-flight slot", "client was saturated"} {
		if !strings.Contains(w, want) {
			t.Errorf("warning %q lacks %q", w, want)
		}
	}
	if w := stagesWarning([]report.StageStats{closed}, report.Pacing{CapWaits: 3, Paced: 3}); w != "" {
		t.Errorf("no stage short: %q", w)
	}
}
