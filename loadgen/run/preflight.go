package run

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
	"github.com/tokenwatt/tokenwatt/energy"
	"github.com/tokenwatt/tokenwatt/internal/termtext"
	"github.com/tokenwatt/tokenwatt/loadgen"
	"github.com/tokenwatt/tokenwatt/loadgen/dataset"
	"github.com/tokenwatt/tokenwatt/loadgen/scenario"
)

// openEnergy opens the energy source; none leaves r.source nil. Under
// Config.Sim, auto (and sim) read the simulator's simulated GPU through
// the same scrape path a remote GPU host would use. It fails fast: a
// missing DCGM library must stop the run before its first request.
func (r *Run) openEnergy(ctx context.Context) error {
	if r.cfg.Energy == energy.SourceSim && r.cfg.Sim == nil {
		return inputErr(errors.New("--energy sim needs --sim (for a separate loadgen sim, use --energy scrape:http://HOST:PORT/metrics)"))
	}
	if _, err := energy.ParseGPUs(r.cfg.GPUs); err != nil {
		return inputErr(err)
	}
	opts := energy.SourceOptions{
		DCGMAddr: r.cfg.DCGMAddr,
		Interval: r.cfg.EnergyInterval,
		Logger:   r.log,
		GPUs:     r.cfg.GPUs,
		Selector: r.cfg.GPUSelector,
		Hostname: r.cfg.Hostname,
	}
	if r.simSrv != nil {
		opts.SimMetricsURL = r.simSrv.URL + "/metrics"
	}
	src, why, err := energy.OpenSource(ctx, r.cfg.Energy, opts)
	if err != nil {
		return inputErr(err)
	}
	if why != "" {
		r.log.Info(why)
	}
	if src == nil {
		r.log.Info("energy: none; the summary's energy columns stay empty")
		return nil
	}
	r.source = src
	what := src.Name()
	switch why := energy.SimulatedBy(src); {
	case r.cfg.Sim != nil:
		what = "the simulator's SIMULATED GPU power model"
	case why != "":
		what += " (SIMULATED GPUs)"
		r.detected = append(r.detected, "the energy source's "+why)
	}
	r.selection = energy.SelectionOf(src)
	r.gpuUUIDs = energy.UUIDs(src.Devices())
	for _, d := range src.Devices() {
		r.gpuModels = append(r.gpuModels, d.Model)
	}
	chosen := ""
	if r.selection.How != "" {
		chosen = " chosen by " + r.selection.How
	}
	r.log.Info(fmt.Sprintf("energy: %s, %d GPU(s)%s (%s), %s, every %v", what, len(src.Devices()), chosen,
		strings.Join(r.gpuUUIDs, " "), src.Method(), r.cfg.EnergyInterval))
	r.energyWarnings = energy.Warnings(src)
	for _, w := range r.energyWarnings {
		r.log.Warn("energy: " + w)
	}
	return nil
}

// connect creates the backend and checks the endpoint and the model.
func (r *Run) connect(ctx context.Context) error {
	b, err := NewBackend(r.sc, r.cfg.APIKey)
	if err != nil {
		return inputErr(err)
	}
	r.backend = b
	if r.model, err = pickModel(ctx, b, r.sc.Model); err != nil {
		return err
	}
	if b.Simulated() && r.cfg.Sim == nil {
		// The server first: the log names what was detected in this order.
		r.detected = append([]string{fmt.Sprintf("the server at %s answers %s: true",
			backends.WithoutUserinfo(b.Endpoint()), backends.SimulatedHeader)}, r.detected...)
	}
	return nil
}

// NewBackend creates the client the scenario names (vllm, openai or
// pytorch) for its endpoint.
func NewBackend(sc *scenario.Scenario, apiKey string) (backends.Backend, error) {
	switch sc.Backend {
	case "openai", "vllm":
		api := backends.APIChat
		if sc.API == string(backends.APICompletions) {
			api = backends.APICompletions
		}
		return backends.NewOpenAI(backends.OpenAIConfig{
			Endpoint:  sc.Endpoint,
			APIKey:    apiKey,
			API:       api,
			VLLM:      sc.Backend == "vllm",
			ExtraBody: sc.ExtraBody,
		})
	case "pytorch":
		if apiKey != "" {
			return nil, errors.New("--api-key is not used by --backend pytorch (TorchServe's inference API has no bearer token here); unset it")
		}
		return backends.NewPyTorch(backends.PyTorchConfig{Endpoint: sc.Endpoint, ExtraBody: sc.ExtraBody})
	default:
		return nil, fmt.Errorf("unknown backend %q (want vllm, openai or pytorch)", sc.Backend)
	}
}

// pickModel checks the endpoint and the model before the run: the server
// must answer and serve the model; with no model given, the only one
// served is used.
func pickModel(ctx context.Context, b backends.Backend, want string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	served, err := b.Models(ctx)
	switch {
	case errors.Is(err, backends.ErrModelsNotListed) && want != "":
		// A TorchServe inference port: healthy, model list elsewhere.
		return want, nil
	case errors.Is(err, backends.ErrModelsNotListed):
		return "", inputErrf("%s: %v", b.Endpoint(), err)
	case errors.Is(err, backends.ErrRedirected):
		// The server answered, elsewhere: not a reachability problem.
		return "", inputErrf("%v", err)
	case err != nil:
		return "", inputErrf("cannot reach the endpoint: %v (is the server running? try --sim for the built-in simulator)", err)
	}
	switch {
	case want != "" && slices.Contains(served, want):
		return want, nil
	case want != "":
		return "", inputErrf("model %q is not served at %s; served: %s (pass one with --model)", want, b.Endpoint(), quoteList(served))
	case len(served) == 1:
		return served[0], nil
	case len(served) == 0:
		return "", inputErrf("%s serves no model", b.Endpoint())
	default:
		return "", inputErrf("%s serves several models: %s; choose one with --model", b.Endpoint(), quoteList(served))
	}
}

// An error that lists the served models names the first listedModels,
// each cut to listedNameBytes, and counts the rest: a server with
// thousands of models, or absurdly long names, still gives a readable
// one-line error.
const (
	listedModels    = 10
	listedNameBytes = 256
)

func quoteList(ss []string) string {
	n := min(len(ss), listedModels)
	q := make([]string, n, n+1)
	for i, s := range ss[:n] {
		if len(s) > listedNameBytes {
			s = termtext.Cut(s, listedNameBytes) + fmt.Sprintf("… (%d bytes)", len(s))
		}
		q[i] = strconv.Quote(s)
	}
	if more := len(ss) - n; more > 0 {
		q = append(q, fmt.Sprintf("… and %d more", more))
	}
	return strings.Join(q, ", ")
}

// loadPrompts loads the scenario's dataset and logs what it holds. Under
// Config.Sim, a dataset that needs the network and has no cached copy
// falls back to synthetic prompts of the scenario's declared shape, so
// the quick start works offline.
func (r *Run) loadPrompts(ctx context.Context) ([]loadgen.Prompt, error) {
	sc := r.sc
	limit := 0
	if sc.NumSamples > 0 && sc.Duration <= 0 {
		limit = sc.NumSamples + sc.Warmup
	}
	seed := int64(0)
	if sc.Seed != nil {
		seed = *sc.Seed
	}
	opts := dataset.Options{
		Field:    sc.DatasetField,
		Format:   dataset.Format(sc.DatasetFormat),
		Limit:    limit,
		Seed:     seed,
		Logger:   r.log,
		InputLen: sc.InputLen,
		Chat:     r.sendsChat(),
	}
	if isSynthetic(sc.Dataset) {
		var err error
		if opts.Tokenizer, err = r.pickTokenizer(ctx); err != nil {
			return nil, err
		}
	}
	set, err := dataset.Load(ctx, sc.Dataset, opts)
	var unavailable *dataset.UnavailableError
	// Synthetic prompts are no conversations: a multi-turn run has no
	// fallback.
	if errors.As(err, &unavailable) && r.simulated() && sc.SimFallbackMeanTokens > 0 && !sc.MultiTurn {
		n := limit
		if n == 0 {
			n = 1000
		}
		r.log.Info(fmt.Sprintf("dataset %s is not reachable and not cached; SIMULATED run uses %d synthetic prompts of about %d tokens instead (pass --dataset FILE for real prompts)",
			sc.Dataset, n, sc.SimFallbackMeanTokens))
		r.datasetFormat = string(dataset.FormatPrompt)
		if opts.Tokenizer, err = r.pickTokenizer(ctx); err != nil {
			return nil, err
		}
		spec := dataset.SyntheticSpec{N: n, Input: dataset.MeanLength(sc.SimFallbackMeanTokens)}
		made, stats, err := dataset.MakeSynthetic(ctx, spec, opts.Tokenizer, opts.Chat, seed)
		if err != nil {
			return nil, inputErr(fmt.Errorf("synthetic prompts: %w", err))
		}
		r.logSynthetic(stats, 0)
		prompts := enginePrompts(made, sc.MultiTurn)
		r.applyOutputLen(prompts, seed)
		return prompts, nil
	}
	if err != nil {
		return nil, inputErr(err)
	}
	r.datasetFormat = string(set.Format)
	r.log.Info(describeDataset(sc, set))
	if sc.MultiTurn && set.Format != dataset.FormatChat && set.Format != dataset.FormatShareGPT {
		return nil, inputErrf("multi_turn replays conversations, but dataset %s has %s rows: give a chat (messages) or ShareGPT (conversations) dataset",
			sc.Dataset, set.Format)
	}
	if set.Format == dataset.FormatChat || set.Format == dataset.FormatShareGPT {
		what := "the completions API"
		switch {
		case r.backend.Name() == "pytorch":
			what = "the PyTorch backend"
		case cmp.Or(sc.API, string(backends.APIChat)) == string(backends.APIChat):
			what = ""
		}
		if what != "" {
			r.log.Info(fmt.Sprintf("dataset %s: %s gets each conversation's messages as plain text "+
				"(their contents joined by a blank line, without the model's chat template); --api chat sends them as messages",
				sc.Dataset, what))
		}
	}
	if set.Synthetic != nil {
		spec, _ := dataset.ParseSynthetic(sc.Dataset, limit, sc.InputLen)
		r.logSynthetic(set.Synthetic, spec.Prefix)
	}
	prompts := enginePrompts(set.Prompts, sc.MultiTurn)
	r.applyOutputLen(prompts, seed)
	return prompts, nil
}

// describeDataset says what a dataset holds: how many prompts, of which
// shape, and where their output lengths come from when not all from the
// scenario, e.g. "dataset sharegpt.json: 100 prompts, format sharegpt
// (auto-detected); max_tokens per prompt: 100 from the first recorded
// answer (estimated at 1.3 tokens per word)".
func describeDataset(sc *scenario.Scenario, set *dataset.Set) string {
	how := "auto-detected"
	if !set.Detected {
		how = "as dataset_format says"
	}
	s := fmt.Sprintf("dataset %s: %d prompts, format %s (%s)", sc.Dataset, len(set.Prompts), set.Format, how)
	if set.NoUserTurn > 0 {
		s += fmt.Sprintf(", %d conversations without a user turn skipped", set.NoUserTurn)
	}
	if set.RowLengths == 0 && set.AnswerLengths == 0 {
		return s
	}
	var parts []string
	if set.RowLengths > 0 {
		parts = append(parts, fmt.Sprintf("%d from the rows' output_len, max_tokens or output_tokens", set.RowLengths))
	}
	if set.AnswerLengths > 0 {
		parts = append(parts, fmt.Sprintf("%d from the first recorded answer (estimated at %g tokens per word)",
			set.AnswerLengths, dataset.SyntheticTokensPerWord))
	}
	if rest := len(set.Prompts) - set.RowLengths - set.AnswerLengths; rest > 0 {
		if sc.MaxTokens > 0 {
			parts = append(parts, fmt.Sprintf("%d the scenario's %d", rest, sc.MaxTokens))
		} else {
			parts = append(parts, fmt.Sprintf("%d the server's default", rest))
		}
	}
	return s + "; max_tokens per prompt: " + strings.Join(parts, ", ")
}

// enginePrompts turns the dataset's prompts into the runner's, with
// their conversations' turns for a multi-turn run.
func enginePrompts(prompts []dataset.Prompt, multiTurn bool) []loadgen.Prompt {
	out := make([]loadgen.Prompt, len(prompts))
	for i := range prompts {
		p := &prompts[i]
		out[i] = loadgen.Prompt{Text: p.Text, MaxTokens: p.MaxTokens, InputTokens: p.InputTokens, Messages: engineMessages(p.Messages)}
		if !multiTurn {
			continue
		}
		for _, t := range p.Turns() {
			out[i].Turns = append(out[i].Turns, loadgen.Turn{Messages: engineMessages(t.Messages), MaxTokens: t.MaxTokens})
		}
	}
	return out
}

func engineMessages(msgs []dataset.Message) []backends.Message {
	if len(msgs) == 0 {
		return nil
	}
	out := make([]backends.Message, len(msgs))
	for i, m := range msgs {
		out[i] = backends.Message(m)
	}
	return out
}

// describeLoad is the run's schedule for its first log line: a shard's
// share, then the whole run's.
func (r *Run) describeLoad() string {
	if !r.cfg.Shard.Sharded() {
		return describeSchedule(r.sc)
	}
	return fmt.Sprintf("shard %s: %s (the whole run: %s)", r.cfg.Shard, describeSchedule(r.share), describeSchedule(r.sc))
}

func describeSchedule(sc *scenario.Scenario) string {
	var s string
	switch {
	case sc.Ramp != nil:
		s = fmt.Sprintf("open loop %s ramp from %g to %g req/s over %v", arrivalOf(sc), sc.Ramp.From, sc.Ramp.To, sc.Ramp.Duration)
		if sc.Concurrency > 0 {
			s += fmt.Sprintf(" (cap %d in flight)", sc.Concurrency)
		}
	case len(sc.Stages) > 0:
		s = fmt.Sprintf("%d stages over %v (%s", len(sc.Stages), sc.StagesDuration(), scenario.FormatStages(sc.Stages[:min(len(sc.Stages), 5)]))
		if len(sc.Stages) > 5 {
			s += ",…"
		}
		s += ")"
		if sc.OpenLoop() {
			s += ", " + arrivalOf(sc) + " arrivals"
			if sc.Concurrency > 0 {
				s += fmt.Sprintf(", cap %d in flight", sc.Concurrency)
			}
		}
	case sc.Rate > 0:
		s = fmt.Sprintf("open loop %s %g req/s", arrivalOf(sc), sc.Rate)
		if sc.Concurrency > 0 {
			s += fmt.Sprintf(" (cap %d in flight)", sc.Concurrency)
		}
	case sc.Concurrency <= 1:
		s = "sequential"
	default:
		s = fmt.Sprintf("concurrency %d", sc.Concurrency)
	}
	if sc.NumSamples > 0 {
		s += fmt.Sprintf(", %d requests", sc.NumSamples)
	}
	if sc.Duration > 0 {
		s += fmt.Sprintf(", up to %v", sc.Duration)
	}
	if sc.NumSamples <= 0 && sc.Duration <= 0 && !sc.Staged() {
		s += ", until interrupted"
	}
	if sc.Warmup > 0 {
		s += fmt.Sprintf(", %d warm-up", sc.Warmup)
	}
	if sc.MultiTurn {
		s += fmt.Sprintf("; multi-turn: concurrency and rate count conversations, requests count turns; history %s",
			cmp.Or(sc.History, scenario.HistoryServer))
		if sc.ThinkTime > 0 {
			s += fmt.Sprintf(", think time %v (%s)", sc.ThinkTime, cmp.Or(sc.ThinkTimeDistribution, scenario.ThinkConstant))
		}
	}
	return s
}

func arrivalOf(sc *scenario.Scenario) string {
	if !sc.OpenLoop() {
		return ""
	}
	if sc.Arrival == "" {
		return scenario.ArrivalConstant
	}
	return sc.Arrival
}
