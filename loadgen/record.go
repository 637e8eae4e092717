package loadgen

import (
	"slices"
	"time"

	"github.com/tokenwatt/tokenwatt/backends"
)

// Record is one measured request: one JSON object per line in
// records.jsonl. Its fields are defined in docs/definitions.md
// ("records.jsonl"); absent values are JSON null (nil pointers), never 0.
// Durations are seconds.
type Record struct {
	RunID      string  `json:"run_id"`
	Seq        int64   `json:"seq"` // 0-based order of scheduling among measured requests; a shard's are the unsharded run's (k mod N = its index)
	Scenario   string  `json:"scenario"`
	Model      string  `json:"model"`
	Backend    string  `json:"backend"`
	Simulated  bool    `json:"simulated"` // the target was tokenwatt's simulator (--sim, or detected)
	Outcome    string  `json:"outcome"`
	HTTPStatus *int    `json:"http_status"`
	Error      *string `json:"error"`

	SchedUnix float64 `json:"sched_unix"` // intended send time, wall clock
	SendUnix  float64 `json:"send_unix"`  // actual send time, wall clock
	DoneUnix  float64 `json:"done_unix"`  // end of stream (t_done), wall clock

	TTFT         *float64  `json:"ttft_s"`
	E2E          *float64  `json:"e2e_s"`
	TPOT         *float64  `json:"tpot_s"`
	ITL          []float64 `json:"itl_s"`
	ITLTruncated int       `json:"itl_truncated"` // gaps after the first backends.MaxITL, left out of itl_s (still in the statistics)
	ScheduleLag  float64   `json:"schedule_lag_s"`
	E2EFromSched *float64  `json:"e2e_from_sched_s"`
	PromptTokens *int      `json:"prompt_tokens"`
	// PromptTokensTarget is the prompt length the request was made to
	// have (synthetic prompts, input_len), to compare with PromptTokens;
	// null for other prompts.
	PromptTokensTarget *int    `json:"prompt_tokens_target"`
	OutputTokens       *int    `json:"output_tokens"`
	TokensSource       *string `json:"tokens_source"`
	// TokensWarning says why the server's usage was not believed (an
	// implausible count); null when it was, or when there was none.
	TokensWarning *string `json:"tokens_warning"`
	TextChunks    int     `json:"text_chunks"`
	PromptIndex   int     `json:"prompt_index"` // index of the prompt in the dataset
	MaxTokens     *int    `json:"max_tokens"`   // the max_tokens sent: the prompt's own, else the scenario's; null: none
	// ConversationID and Turn place a multi-turn run's request: the
	// conversation's 0-based order of starting in the run, and the turn's
	// 1-based number in it; null outside multi-turn runs.
	ConversationID *int64 `json:"conversation_id"`
	Turn           *int   `json:"turn"`

	// ClientLatenessMax is the largest client lateness of the request's
	// stamped text chunks (backends.Response.Lateness: a simulator with
	// --stamp-chunks on the same host); null when none was stamped.
	ClientLatenessMax *float64 `json:"client_lateness_max_s"`

	// FinishReason is why the server says generation ended, as it said
	// it ("stop": the model's end of sequence or a stop string;
	// "length": max_tokens), at most backends.MaxFinishReason bytes;
	// null when it gave none.
	FinishReason *string `json:"finish_reason"`
	// Stage is the index (0-based) of the stage that sent the request, in
	// a run with stages or a ramp; null otherwise.
	Stage *int `json:"stage"`

	// Energy attributed to the request (docs/energy.md, "Per-request
	// attribution"), joules; null without an energy source.
	EnergyJ        *float64 `json:"energy_j"`
	PrefillEnergyJ *float64 `json:"prefill_energy_j"`
	DecodeEnergyJ  *float64 `json:"decode_energy_j"`

	// SLOMet says whether the request met the run's SLO (--slo, slo):
	// it succeeded and each bound held (MeetsSLO); null without an SLO.
	SLOMet *bool `json:"slo_met"`

	// Only with save_text (--save-text), else null: prompts and answers
	// may be private. Prompt is what was sent: the text, or the chat
	// messages ([{"role", "content"}, ...]) when the chat API sent
	// messages. Text is the generated answer (the content, not reasoning
	// text), at most backends.MaxText bytes; TextTruncated says whether
	// it was cut there.
	Prompt        any     `json:"prompt"`
	Text          *string `json:"text"`
	TextTruncated *bool   `json:"text_truncated"`

	// The same instants as SendUnix, TTFT and DoneUnix, with Go's
	// monotonic clock, for energy attribution.
	send, first, done time.Time

	// moreITL holds the ITLTruncated gaps left out of ITL, for the
	// statistics; nil when none were.
	moreITL *backends.GapSketch

	// lateness and serverLate are the response's Lateness and ServerLate
	// (stamped text chunks' client and simulator timer lateness), for
	// the statistics and the saturation monitor; skewed counts the
	// stamps whose client lateness the clocks could not agree on.
	lateness, serverLate []time.Duration
	skewed               int
}

// MoreITL calls f for the gaps left out of ITL (ITLTruncated of them),
// grouped by value to within backends.GapAccuracy: each value and how
// many gaps have it. It does nothing when none were left out.
func (r *Record) MoreITL(f func(seconds float64, count int)) { r.moreITL.ForEach(f) }

// Times returns when the request was sent, got its first text (zero if
// never) and ended, on the monotonic clock.
func (r *Record) Times() (send, first, done time.Time) { return r.send, r.first, r.done }

// SetEnergy records the request's attributed energy, in joules.
func (r *Record) SetEnergy(prefillJ, decodeJ float64) {
	r.PrefillEnergyJ, r.DecodeEnergyJ = ptr(prefillJ), ptr(decodeJ)
	r.EnergyJ = ptr(prefillJ + decodeJ)
}

// OK reports whether the request succeeded.
func (r *Record) OK() bool { return r.Outcome == string(backends.OutcomeOK) }

// newRecord derives a record from what the client measured. sched is the
// intended send time (t_sched); in closed-loop modes it equals resp.Send.
func newRecord(sched time.Time, resp *backends.Response) Record {
	rec := Record{
		send:      resp.Send,
		first:     resp.First,
		done:      resp.Done,
		Outcome:   string(resp.Outcome),
		SchedUnix: unixSeconds(sched),
		SendUnix:  unixSeconds(resp.Send),
		DoneUnix:  unixSeconds(resp.Done),
	}
	if resp.HTTPStatus != 0 {
		rec.HTTPStatus = ptr(resp.HTTPStatus)
	}
	if resp.Error != "" {
		rec.Error = ptr(resp.Error)
	}
	lag := resp.Send.Sub(sched)
	if lag < 0 {
		lag = 0
	}
	rec.ScheduleLag = lag.Seconds()
	if !resp.First.IsZero() {
		rec.TTFT = ptr(resp.First.Sub(resp.Send).Seconds())
	}
	if !resp.Last.IsZero() {
		rec.E2E = ptr(resp.Last.Sub(resp.Send).Seconds())
		rec.E2EFromSched = ptr(resp.Last.Sub(sched).Seconds())
	}
	// A streamed request with text has its gaps (none for one chunk: []);
	// without a first chunk, or not streamed, ITL is unmeasured: null.
	// Past backends.MaxITL gaps the record lists only the first ones and
	// says how many it left out; the statistics still get them all.
	if !resp.First.IsZero() {
		rec.ITL = make([]float64, len(resp.ITL))
		for i, d := range resp.ITL {
			rec.ITL[i] = d.Seconds()
		}
		rec.ITLTruncated = resp.MoreITL.Count()
		if rec.ITLTruncated > 0 {
			rec.moreITL = resp.MoreITL
		}
	}
	if n, m := len(resp.Lateness), len(resp.ServerLate); n+m > 0 {
		// One allocation for both: the response's slices are reused.
		buf := make([]time.Duration, n+m)
		copy(buf, resp.Lateness)
		copy(buf[n:], resp.ServerLate)
		rec.lateness, rec.serverLate = buf[:n:n], buf[n:]
		if n > 0 {
			rec.ClientLatenessMax = ptr(slices.Max(rec.lateness).Seconds())
		}
	}
	rec.skewed = resp.LatenessSkewed
	if resp.PromptTokens >= 0 {
		rec.PromptTokens = ptr(resp.PromptTokens)
	}
	if resp.OutputTokens >= 0 {
		rec.OutputTokens = ptr(resp.OutputTokens)
		if resp.OutputTokens > 1 && !resp.First.IsZero() && !resp.Last.IsZero() {
			rec.TPOT = ptr(resp.Last.Sub(resp.First).Seconds() / float64(resp.OutputTokens-1))
		}
	}
	if resp.TokensSource != "" {
		rec.TokensSource = ptr(resp.TokensSource)
	}
	if resp.TokensWarning != "" {
		rec.TokensWarning = ptr(resp.TokensWarning)
	}
	if resp.FinishReason != "" {
		rec.FinishReason = ptr(resp.FinishReason)
	}
	rec.TextChunks = resp.TextChunks
	return rec
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func ptr[T any](v T) *T { return &v }
