package main

import (
	"fmt"
	"time"

	"github.com/tokenwatt/tokenwatt/backends/sim"
)

// simFlags configure the simulator's latency and failure model. The sim
// command takes them as they are; the run command takes them prefixed
// with --sim- for its in-process simulator. Either way they read the same
// TOKENWATT_SIM_* variables.
type simFlags struct {
	TTFT       time.Duration `env:"TOKENWATT_SIM_TTFT" name:"ttft" default:"20ms" help:"Simulated time to first token."`
	Prefill    time.Duration `env:"TOKENWATT_SIM_PREFILL_PER_TOKEN" name:"prefill-per-token" default:"0s" help:"Simulated prefill time per prompt token, added to the TTFT (e.g. 50us: longer prompts and conversation histories wait longer for their first token)."`
	ITL        time.Duration `env:"TOKENWATT_SIM_ITL" name:"itl" default:"2ms" help:"Simulated gap between tokens."`
	Jitter     time.Duration `env:"TOKENWATT_SIM_JITTER" default:"0s" help:"Uniform noise added to each TTFT and ITL, in [-jitter, +jitter]."`
	MaxNumSeqs int           `env:"TOKENWATT_SIM_MAX_NUM_SEQS" default:"256" help:"Sequences decoded at once; more requests queue (vLLM --max-num-seqs)."`
	MaxLen     int           `env:"TOKENWATT_SIM_MAX_MODEL_LEN" name:"max-model-len" default:"131072" help:"Context length in tokens: a prompt plus max_tokens above it is answered 400, as vLLM does (vLLM --max-model-len)."`
	Slowdown   float64       `env:"TOKENWATT_SIM_SLOWDOWN" default:"0" help:"ITL grows by this fraction per extra running sequence (batching slow-down)."`
	Fail500    float64       `env:"TOKENWATT_SIM_FAIL_500" name:"fail-500" default:"0" help:"Probability of an HTTP 500 per request."`
	Fail429    float64       `env:"TOKENWATT_SIM_FAIL_429" name:"fail-429" default:"0" help:"Probability of an HTTP 429 per request."`
	Disconnect float64       `env:"TOKENWATT_SIM_DISCONNECT" default:"0" help:"Probability of closing the connection mid-stream."`
	Stall      float64       `env:"TOKENWATT_SIM_STALL" default:"0" help:"Probability of a stream that stops sending after the first token."`
	Garbage    float64       `env:"TOKENWATT_SIM_GARBAGE" default:"0" help:"Probability of a malformed SSE data line."`
	IdleWatts  float64       `env:"TOKENWATT_SIM_IDLE_WATTS" name:"idle-watts" default:"100" help:"Simulated GPU power with nothing running, watts."`
	SeqWatts   float64       `env:"TOKENWATT_SIM_WATTS_PER_SEQ" name:"watts-per-seq" default:"50" help:"Simulated extra power per running sequence, watts."`
	TokenJ     float64       `env:"TOKENWATT_SIM_JOULES_PER_TOKEN" name:"joules-per-token" default:"0" help:"Simulated extra energy per generated token, joules."`
	GPUs       int           `env:"TOKENWATT_SIM_GPUS" name:"gpus" default:"1" help:"Simulated GPUs sharing that power evenly."`
	Reasoning  bool          `env:"TOKENWATT_SIM_REASONING" help:"Stream the first half of each answer as reasoning_content."`
	SimSeed    int64         `env:"TOKENWATT_SIM_SEED" name:"seed" default:"1" help:"Seed for the simulator's token lengths, jitter and failures."`
	Stamp      bool          `env:"TOKENWATT_SIM_STAMP_CHUNKS" name:"stamp-chunks" help:"Start each token's write with an SSE comment line ': tokenwatt-sent <unix_ns> <timer_late_ns>' (when it was written, and how late the simulator's timer was), from which a loadgen on the same host measures its own lateness (report.json client.lateness_s). Off, the bytes are vLLM's."`
}

func (f *simFlags) config(model string) (sim.Config, error) {
	cfg := sim.DefaultConfig()
	cfg.Model = model
	cfg.TTFT = f.TTFT
	cfg.PrefillPerToken = f.Prefill
	cfg.ITL = f.ITL
	cfg.Jitter = f.Jitter
	cfg.MaxNumSeqs = f.MaxNumSeqs
	cfg.MaxModelLen = f.MaxLen
	cfg.SlowdownPerSeq = f.Slowdown
	cfg.Fail500 = f.Fail500
	cfg.Fail429 = f.Fail429
	cfg.Disconnect = f.Disconnect
	cfg.Stall = f.Stall
	cfg.Garbage = f.Garbage
	cfg.Reasoning = f.Reasoning
	cfg.IdleWatts = f.IdleWatts
	cfg.WattsPerSeq = f.SeqWatts
	cfg.JoulesPerToken = f.TokenJ
	cfg.GPUs = f.GPUs
	cfg.Seed = f.SimSeed
	cfg.StampChunks = f.Stamp
	if _, err := sim.New(cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// simCmd serves the simulator until interrupted.
type simCmd struct {
	Addr       string   `default:"127.0.0.1:8000" help:"Address to listen on (HOST:PORT)."`
	Model      string   `default:"tokenwatt-sim" help:"Model id to serve."`
	LowLatency bool     `name:"low-latency" help:"Keep CPUs out of deep idle states while serving (PM QoS, Linux, root) so token times stay on schedule; costs CPU power."`
	SimFlags   simFlags `embed:""`
}

func (c *simCmd) Run(e *env) error {
	cfg, err := c.SimFlags.config(c.Model)
	if err != nil {
		return usageErr(err)
	}
	if c.LowLatency {
		defer lowLatency(e)()
	}
	srv, err := sim.Start(e.ctx, c.Addr, cfg)
	if err != nil {
		return usageErrf("simulator: listen on %s: %v (pick another --addr)", c.Addr, err)
	}
	fmt.Fprintf(e.stderr, "loadgen sim: SIMULATED vLLM-compatible server for model %q at %s/v1 (ttft %v, itl %v, jitter %v, max-num-seqs %d); Ctrl-C stops it\n",
		cfg.Model, srv.URL, cfg.TTFT, cfg.ITL, cfg.Jitter, cfg.MaxNumSeqs)
	// Failed accepts (out of file descriptors, at high rates) are
	// counted by the server; say how many every so often, not one line
	// each.
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	var said int64
	for {
		select {
		case <-t.C:
			said = reportAcceptErrors(e, srv.AcceptErrors(), said)
		case <-e.ctx.Done():
			err := srv.Close()
			reportAcceptErrors(e, srv.AcceptErrors(), said)
			return err
		}
	}
}

// reportAcceptErrors warns of the simulator's failed accepts since the
// count said was reported, and returns the new count.
func reportAcceptErrors(e *env, ae sim.AcceptErrors, said int64) int64 {
	if w := simAcceptWarning(ae.Count, said, ae.OpenFiles > 0, ae.Last); w != "" {
		e.log.Warn(w)
	}
	return ae.Count
}

// scenariosCmd lists the built-in scenarios.
type scenariosCmd struct{}

func (scenariosCmd) Run(e *env) error {
	list, err := loadgenBuiltins()
	if err != nil {
		return err
	}
	width := 0
	for _, s := range list {
		width = max(width, len(s.Name))
	}
	for _, s := range list {
		fmt.Fprintf(e.stdout, "%-*s  %s\n", width, s.Name, s.Description)
	}
	return nil
}
