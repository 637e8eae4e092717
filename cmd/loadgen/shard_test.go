package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenwatt/tokenwatt/backends/sim"
	"github.com/tokenwatt/tokenwatt/internal/promtest"
	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/report"
)

// TestShardedRun is a local stand-in for a sharded Kubernetes Job: three
// loadgen processes, --shard i/3 (given as the flag, as /3 with
// JOB_COMPLETION_INDEX, and as TOKENWATT_SHARD) and one --start-at (RFC
// 3339 and Unix seconds), run one open-loop schedule against one
// simulator, scraped by a real Prometheus and pushing to a real
// VictoriaMetrics. Together they send exactly the unsharded run's
// requests, each at its unsharded intended time from the common start;
// loadgen dump, from either database, gives one row whose counts are the
// sums of the shards' summaries, whose rate and concurrency are the
// run's, and whose achieved send rate is the union's.
func TestShardedRun(t *testing.T) {
	bin := buildLoadgen(t) // before offlineHF, which moves the build cache
	offlineHF(t)
	cfg := sim.DefaultConfig()
	cfg.TTFT, cfg.ITL = 5*time.Millisecond, 2*time.Millisecond
	simURL := startSim(t, cfg)
	const (
		n       = 3
		runID   = "sharded"
		rate    = 40.0
		samples = 160
		seed    = 11
	)
	addrs := []string{closedAddr(t), closedAddr(t), closedAddr(t)}
	prom := promtest.StartPrometheus(t, addrs, time.Second)
	vm := promtest.StartVictoriaMetrics(t)
	promtest.WaitFor(t, prom.URL(), `count(up{job="targets"})`, 20*time.Second, promtest.Equal(n))

	// Time to start three processes and measure a 1 s idle baseline
	// each, after a warm-up, on a busy machine.
	at := time.Now().Add(6 * time.Second).Truncate(time.Microsecond)
	outs := make([]string, n)
	cmds := make([]*exec.Cmd, n)
	stderrs := make([]*bytes.Buffer, n)
	for i := range n {
		outs[i], stderrs[i] = t.TempDir(), &bytes.Buffer{}
		args := []string{"--endpoint", simURL, "--energy", "scrape:" + simURL + "/metrics", "--idle-baseline", "1s",
			"--dataset", "synthetic", "--num-samples", fmt.Sprint(samples), "--rate", fmt.Sprint(rate), "--arrival", "constant",
			"--concurrency", "30", "--warmup", "3", "--max-tokens", "16", "--min-tokens", "0", "--seed", fmt.Sprint(seed),
			"--run-id", runID, "--out", outs[i], "--metrics-addr", addrs[i], "--linger", "2500ms",
			"--push-url", fmt.Sprintf("%s?extra_label=instance=shard-%d", vm.ImportURL(), i), "--push-interval", "1s"}
		env := os.Environ()
		switch i {
		case 0:
			args = append(args, "--shard", "0/3", "--start-at", at.Format(time.RFC3339Nano))
		case 1:
			args = append(args, "--shard", "/3", "--start-at", at.Format(time.RFC3339Nano))
			env = append(env, "JOB_COMPLETION_INDEX=1")
		case 2:
			env = append(env, "TOKENWATT_SHARD=2/3", fmt.Sprintf("TOKENWATT_START_AT=%d.%06d", at.Unix(), at.Nanosecond()/1000))
		}
		cmds[i] = exec.Command(bin, args...)
		cmds[i].Env, cmds[i].Stderr = env, stderrs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("shard %d: %v\nstderr:\n%s", i, err, stderrs[i])
		}
	}

	// Together, the unsharded run's requests, each once, each at its
	// intended time from the common start.
	sched, err := loadgen.NewSchedule("constant", rate, 0, seed)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]time.Duration, samples)
	for k := range want {
		want[k] = sched.Next()
	}
	var (
		locals              []localRun
		seqs                []int64
		firstSend, lastSend time.Time
		sum                 report.Row
		tokens              int64
	)
	for i, out := range outs {
		local := readLocal(t, out)
		locals = append(locals, local)
		var first *loadgen.Record
		for k := range local.recs {
			rec := &local.recs[k]
			if rec.Seq%n != int64(i) {
				t.Errorf("shard %d sent request %d", i, rec.Seq)
				continue
			}
			seqs = append(seqs, rec.Seq)
			if got := time.Unix(0, int64(rec.SchedUnix*1e9)).Sub(at); rec.Seq < samples && math.Abs((got-want[rec.Seq]).Seconds()) > 5e-6 {
				t.Errorf("shard %d: request %d intended at start+%v, want start+%v", i, rec.Seq, got, want[rec.Seq])
			}
			send := time.Unix(0, int64(rec.SendUnix*1e9))
			if first == nil || rec.SendUnix < first.SendUnix {
				first = rec
			}
			if firstSend.IsZero() || send.Before(firstSend) {
				firstSend = send
			}
			if send.After(lastSend) {
				lastSend = send
			}
		}
		// The shard's first send against its intended time, the common
		// start plus its first arrival's offset: logged, and only
		// bounded loosely (the machine may be busy).
		if first != nil {
			late := time.Duration((first.SendUnix - first.SchedUnix) * 1e9)
			t.Logf("shard %d: first request %d sent %v after its intended start+%v", i, first.Seq, late, want[first.Seq])
			if late > time.Second || late < -time.Millisecond {
				t.Errorf("shard %d: first send %v from its intended time, want within 1 s", i, late)
			}
		}
		sum.TotalPrompts += local.row.TotalPrompts
		sum.SuccessfulPrompts += local.row.SuccessfulPrompts
		tokens += deref64(local.row.TotalCompletionTokens)
		if strings.Contains(stderrs[i].String(), "warning: ") {
			t.Logf("shard %d warned:\n%s", i, stderrs[i])
		}

		var rep report.Report
		b, err := os.ReadFile(runFile(t, out, report.ReportFileName))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		s := rep.Settings
		if s.Shard != fmt.Sprintf("%d/3", i) || s.StartAt == nil || !s.StartAt.Equal(at) || math.Abs(s.Rate-rate/n) > 1e-9 || s.Concurrency != 10 || s.Warmup != 1 {
			t.Errorf("shard %d: report.json settings shard %q start_at %v rate %v concurrency %d warmup %d; want %d/3, %v, %v, 10, 1",
				i, s.Shard, s.StartAt, s.Rate, s.Concurrency, s.Warmup, i, at, rate/n)
		}
		if local.row.IdlePowerW == nil {
			t.Errorf("shard %d measured no idle baseline before the start; stderr:\n%s", i, stderrs[i])
		}
	}
	slices.Sort(seqs)
	if len(seqs) != samples || seqs[0] != 0 || seqs[len(seqs)-1] != samples-1 || len(slices.Compact(seqs)) != samples {
		t.Fatalf("the shards sent requests %v, want 0..%d each once", seqs, samples-1)
	}
	union := float64(samples) / lastSend.Sub(firstSend).Seconds()
	t.Logf("union: %d requests sent at %.3f req/s (target %g), first send %v after the start", samples, union, rate, firstSend.Sub(at))

	// One row per database, summing the shards.
	vm.Flush(t)
	promtest.WaitFor(t, vm.URL(), fmt.Sprintf(`count(tokenwatt_run_end_timestamp_seconds{run_id=%q})`, runID), 15*time.Second, promtest.Equal(n))
	for _, db := range []struct{ name, url string }{{"Prometheus", prom.URL()}, {"VictoriaMetrics", vm.URL()}} {
		got, stderr := dumpRow(t, "--prometheus", db.url, "--run-id", runID)
		if got.TotalPrompts != sum.TotalPrompts || got.SuccessfulPrompts != sum.SuccessfulPrompts || deref64(got.TotalCompletionTokens) != tokens {
			t.Errorf("%s: dump %d requests, %d ok, %d output tokens; the shards' summaries sum to %d, %d, %d\n%s", db.name,
				got.TotalPrompts, got.SuccessfulPrompts, deref64(got.TotalCompletionTokens), sum.TotalPrompts, sum.SuccessfulPrompts, tokens, stderr)
		}
		if got.RequestRate == nil || math.Abs(*got.RequestRate-rate) > 1e-9 || deref(got.Concurrency) != 30 {
			t.Errorf("%s: dump rate %v concurrency %v, want the run's %v and 30", db.name, deref(got.RequestRate), deref(got.Concurrency), rate)
		}
		// The achieved send rate is the union's, from the first shard's
		// first send to the last one's last: to the microsecond, since
		// the run window's edges are exported so.
		if got.SendRate == nil || math.Abs(*got.SendRate/union-1) > 1e-3 {
			t.Errorf("%s: dump send rate %v, want the union's %v", db.name, deref(got.SendRate), union)
		}
		if got.SendRate != nil && math.Abs(*got.SendRate/rate-1) > 0.25 {
			t.Errorf("%s: dump send rate %v, want about the target %v", db.name, *got.SendRate, rate)
		}
		if got.GPUs == nil || *got.GPUs != 1 || got.GPUEnergyWh == nil {
			t.Errorf("%s: energy %v GPU(s), %v Wh; want the one shared GPU measured", db.name, deref(got.GPUs), deref(got.GPUEnergyWh))
		}
		if strings.Contains(stderr, "collide") {
			t.Errorf("%s:\n%s", db.name, stderr)
		}
	}
	checkAgreementCounts(t, locals)
}

// checkAgreementCounts checks each shard's summary row against its own
// records, so that the sums above are of what was sent.
func checkAgreementCounts(t *testing.T, locals []localRun) {
	t.Helper()
	for i, l := range locals {
		if l.row.TotalPrompts != len(l.recs) {
			t.Errorf("shard %d: row counts %d requests, records %d", i, l.row.TotalPrompts, len(l.recs))
		}
	}
}

// TestShardFlags: what --shard and --start-at refuse.
// A sharded run's push URL without an instance label of its own gets
// instance=shard-I, so that the shards' pushed series do not collide; one
// that names an instance is kept.
func TestShardPushInstance(t *testing.T) {
	shard := loadgen.Shard{Index: 2, Count: 4}
	for in, want := range map[string]string{
		"http://vm:8428/api/v1/import/prometheus":                        "http://vm:8428/api/v1/import/prometheus?extra_label=instance%3Dshard-2",
		"http://vm:8428/api/v1/import/prometheus?extra_label=team%3Dllm": "http://vm:8428/api/v1/import/prometheus?extra_label=team%3Dllm&extra_label=instance%3Dshard-2",
		"http://pgw:9091/metrics/job/loadgen":                            "http://pgw:9091/metrics/job/loadgen/instance/shard-2",
	} {
		if got := withShardInstance(in, shard); got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
		if !pushNamesInstance(withShardInstance(in, shard)) {
			t.Errorf("%s: the result names no instance", in)
		}
	}
	if named := "http://vm:8428/api/v1/import/prometheus?extra_label=instance=pod-7"; !pushNamesInstance(named) {
		t.Errorf("%s names its instance", named)
	}
}

func TestShardFlags(t *testing.T) {
	offlineHF(t)
	base := []string{"--sim", "--dataset", "synthetic", "--out", t.TempDir(), "--metrics-addr="}
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--shard", "0/2", "-c", "4", "--num-samples", "10"}, nil, "same --run-id"},
		{[]string{"--shard", "/2", "--run-id", "x", "-c", "4", "--num-samples", "10"}, nil, "JOB_COMPLETION_INDEX"},
		{[]string{"--shard", "/2", "--run-id", "x", "-c", "4", "--num-samples", "10"}, map[string]string{"JOB_COMPLETION_INDEX": "2"}, "from 0 to 1"},
		{[]string{"--run-id", "x", "-c", "4", "--num-samples", "10"}, map[string]string{"TOKENWATT_SHARD": "5/4"}, "from 0 to 3"},
		{[]string{"--shard", "0/4", "--run-id", "x", "-c", "3", "--num-samples", "10"}, nil, "concurrency 3 is less than the 4 shards"},
		{[]string{"--start-at", "2025-13-01T00:00:00Z", "--num-samples", "1"}, nil, "RFC 3339"},
		{[]string{"--start-at", fmt.Sprint(time.Now().Add(time.Hour).UnixMilli()), "--num-samples", "1"}, nil, "not milliseconds"},
		{[]string{"--num-samples", "1"}, map[string]string{"TOKENWATT_START_AT": "soon"}, "--start-at"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			t.Setenv("JOB_COMPLETION_INDEX", "")
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			res := runCLI(t, append(slices.Clone(base), c.args...)...)
			if res.code != exitUsage || !strings.Contains(res.stderr, c.want) {
				t.Errorf("%v %v: exit %d, want %d with %q\nstderr: %s", c.args, c.env, res.code, exitUsage, c.want, res.stderr)
			}
		})
	}
	res := runCLI(t, "sweep", "--sim", "--rates", "1,2", "--shard", "0/2", "--num-samples", "2")
	if res.code != exitUsage || !strings.Contains(res.stderr, "a sweep runs in one process") {
		t.Errorf("sweep --shard: exit %d\nstderr: %s", res.code, res.stderr)
	}
}

func TestParseStartAt(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"2025-06-01T12:00:00Z", time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)},
		{"2025-06-01T14:00:00.25+02:00", time.Date(2025, 6, 1, 12, 0, 0, 250e6, time.UTC)},
		{"1748779200", time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)},
		{"1748779200.000000001", time.Date(2025, 6, 1, 12, 0, 0, 1, time.UTC)},
		{"1748779200.5", time.Date(2025, 6, 1, 12, 0, 0, 500e6, time.UTC)},
	} {
		got, err := parseStartAt(c.in)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("parseStartAt(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "soon", "-5", "+5", "1.2.3", "1748779200.1234567890", "1e9", "2025-06-01 12:00:00"} {
		if got, err := parseStartAt(bad); err == nil {
			t.Errorf("parseStartAt(%q) = %v, want an error", bad, got)
		}
	}
}
