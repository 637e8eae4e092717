package run

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/energy"
	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
	"github.com/tokenwatt/tokenwatt/report"
)

// checkRunID refuses a run id that cannot name the run's directory.
func checkRunID(id string) error {
	switch {
	case id == "." || id == "..":
		return fmt.Errorf("--run-id %q: not a directory name", id)
	case strings.ContainsAny(id, `/\`+"\x00"):
		return fmt.Errorf("--run-id %q: no / or \\ (it names the run's directory)", id)
	}
	return nil
}

// promptsHash is the SHA-256 of the prompts in the order loaded: two
// runs with the same hash sent the same requests. Each prompt is its
// text, or its messages (each role, 0x1F, content, 0x1E), then its own
// max_tokens (0x1D and the number) when it has one, then a NUL; a
// dataset of plain prompts hashes as the texts, each followed by a NUL.
// In a multi-turn run a conversation's later turns follow its first,
// each 0x1C, its messages and its own max_tokens as above.
func promptsHash(prompts []loadgen.Prompt) string {
	h := sha256.New()
	for i := range prompts {
		p := &prompts[i]
		if len(p.Messages) == 0 {
			h.Write([]byte(p.Text))
		}
		hashMessages(h, p.Messages, p.MaxTokens)
		for _, t := range p.Turns[min(1, len(p.Turns)):] {
			h.Write([]byte{0x1c})
			hashMessages(h, t.Messages, t.MaxTokens)
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func hashMessages(h hash.Hash, msgs []backends.Message, maxTokens int) {
	for _, m := range msgs {
		h.Write([]byte(m.Role))
		h.Write([]byte{0x1f})
		h.Write([]byte(m.Content))
		h.Write([]byte{0x1e})
	}
	if maxTokens > 0 {
		h.Write([]byte{0x1d})
		h.Write(strconv.AppendInt(nil, int64(maxTokens), 10))
	}
}

// multiTurn is report.json's account of a multi-turn run's replay; nil
// for other runs.
func multiTurn(sc *scenario.Scenario) *report.MultiTurn {
	if !sc.MultiTurn {
		return nil
	}
	return &report.MultiTurn{
		History:               cmp.Or(sc.History, scenario.HistoryServer),
		ThinkTimeS:            sc.ThinkTime.Seconds(),
		ThinkTimeDistribution: cmp.Or(sc.ThinkTimeDistribution, scenario.ThinkConstant),
	}
}

// report is the run's report.json.
func (r *Run) report(res *loadgen.Result, row *report.Row, saturation string) *report.Report {
	rep := &report.Report{}
	rep.FillFromRow(row)
	rep.TokenwattVersion = r.cfg.Version
	rep.Host = cmp.Or(r.cfg.Hostname, os.Getenv("NODE_NAME"))
	if rep.Host == "" {
		rep.Host, _ = os.Hostname()
	}
	if res.Requests > 0 {
		start, end := res.Start.UTC(), res.End.UTC()
		rep.Started, rep.Finished = &start, &end
	}
	rep.StopReason = res.StopReason
	sc := r.sc
	stream := sc.Stream == nil || *sc.Stream
	api := cmp.Or(sc.API, string(backends.APIChat))
	if r.backend.Name() == "pytorch" {
		api = "" // TorchServe's inference API has no chat/completions choice
	}
	rep.Settings = report.Settings{
		Scenario: sc.Name, Endpoint: backends.WithoutUserinfo(r.backend.Endpoint()), Model: r.model,
		Backend: r.backend.Name(), API: api, Stream: stream,
		Dataset: sc.Dataset, DatasetField: sc.DatasetField, DatasetFormat: r.datasetFormat, DatasetPrompts: len(r.prompts), DatasetSHA256: r.promptsSHA,
		NumSamples: sc.NumSamples, DurationS: sc.Duration.Seconds(), Rate: sc.Rate, Arrival: arrivalOf(sc),
		Burstiness: sc.Burstiness, Concurrency: sc.Concurrency, Warmup: sc.Warmup,
		MaxTokens: sc.MaxTokens, MinTokens: sc.MinTokens, IgnoreEOS: sc.IgnoreEOS, Temperature: sc.Temperature, Seed: sc.Seed,
		ExtraBody: sc.ExtraBody, SaveText: sc.SaveText, MultiTurn: multiTurn(sc),
		TimeoutS: sc.Timeout.Seconds(), MaxConsecutiveFailures: sc.MaxConsecutiveFailures, Stages: scenario.FormatStages(sc.Stages),
		EnergySource: row.EnergySource, GPUs: r.gpuUUIDs, GPUModels: r.gpuModels, GPUSelection: r.selection.How,
		CarbonIntensityGPerKWh: row.CarbonIntensityGPerKWh,
		Shard:                  r.cfg.Shard.String(),
	}
	if load := r.share; load != sc {
		// A shard's own share of the load; the whole run's is N times
		// it, and its stages' (Settings.Stages) likewise.
		rep.Settings.NumSamples, rep.Settings.Rate, rep.Settings.Concurrency, rep.Settings.Warmup = load.NumSamples, load.Rate, load.Concurrency, load.Warmup
		rep.Settings.Stages = scenario.FormatStages(load.Stages)
	}
	if at := r.cfg.StartAt; !at.IsZero() {
		at = at.UTC()
		rep.Settings.StartAt = &at
	}
	if load := r.share; load.Ramp != nil {
		rep.Settings.Ramp = load.Ramp.String()
	}
	if !sc.InputLen.IsZero() {
		rep.Settings.InputLen = ptr(sc.InputLen.String())
	}
	if !sc.OutputLen.IsZero() {
		rep.Settings.OutputLen = ptr(sc.OutputLen.String())
	}
	if r.promptTokenizer != "" {
		rep.Settings.PromptTokenizer = ptr(r.promptTokenizer)
	}
	if r.meter != nil {
		rep.Settings.EnergyIntervalS = r.cfg.EnergyInterval.Seconds()
		rep.Settings.IdleBaselineS = r.cfg.IdleBaseline.Seconds()
		if k := r.cfg.KnownIdle; k != nil {
			rep.Settings.IdleBaselineS, rep.Settings.IdleBaselineFrom = 0, k.RunID
		}
		rep.Files.Energy = filepath.Join(r.runDir, energy.FileName)
	}
	rep.Requests.Outcomes = r.summary.failures()
	if row.SuccessfulPrompts > 0 {
		rep.Requests.Outcomes[string(backends.OutcomeOK)] = row.SuccessfulPrompts
	}
	rep.Requests.FinishReasons, rep.Requests.NoFinishReason = r.summary.finishReasons()
	rep.Latency = r.summary.distributions()
	if rep.SLO != nil {
		bound := func(d time.Duration) *float64 {
			if d <= 0 {
				return nil
			}
			return new(d.Seconds())
		}
		rep.SLO.TTFTS, rep.SLO.TPOTS, rep.SLO.E2ES = bound(sc.SLO.TTFT), bound(sc.SLO.TPOT), bound(sc.SLO.E2E)
	}
	rep.Client.Saturation = saturation
	rep.Client.LatenessS, rep.Client.ServerTimerLatenessS = r.summary.clientLateness()
	rep.Files.Records, rep.Files.Summary = r.recordsN, r.cfg.SummaryPath
	return rep
}
