package htmlreport

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/tokenwatt/tokenwatt/report"
)

// Bounds on what a report keeps of a run, whatever its size: the charts
// are drawn from at most this much, so a run of millions of requests
// draws as fast, and as small, as one of thousands.
const (
	// maxSample is how many values of each latency (and of J per token)
	// are kept: a uniform sample (reservoir, fixed seed) beyond it.
	maxSample = 100_000
	// maxScatter is how many requests the J-per-token scatter shows.
	maxScatter = 3_000
	// timeBins divides the run window for the time charts.
	timeBins = 240
	// maxLine is the longest records.jsonl line read (--save-text keeps
	// up to 1 MiB of answer, escaped, plus the prompt); a longer one is
	// skipped and counted.
	maxLine = 64 << 20
)

// Files of a run directory (docs/definitions.md, docs/energy.md,
// docs/report.md).
const (
	recordsFile = "records.jsonl"
	energyFile  = "energy.jsonl"
)

// record is what the report reads of a records.jsonl line
// (docs/definitions.md, "records.jsonl"); other fields are ignored.
type record struct {
	RunID          string    `json:"run_id"`
	Simulated      bool      `json:"simulated"`
	Outcome        string    `json:"outcome"`
	SendUnix       float64   `json:"send_unix"`
	DoneUnix       float64   `json:"done_unix"`
	TTFT           *float64  `json:"ttft_s"`
	ITL            []float64 `json:"itl_s"`
	E2E            *float64  `json:"e2e_s"`
	OutputTokens   *int      `json:"output_tokens"`
	EnergyJ        *float64  `json:"energy_j"`
	PrefillEnergyJ *float64  `json:"prefill_energy_j"`
	DecodeEnergyJ  *float64  `json:"decode_energy_j"`
}

// reservoir is a uniform sample of at most max values (Algorithm R, with
// a fixed seed so that a report is the same each time it is made) and
// how many values it was drawn from.
type reservoir[T any] struct {
	n    int64
	vals []T
	max  int
	rng  *rand.Rand
}

func newReservoir[T any](max int) *reservoir[T] {
	return &reservoir[T]{max: max, rng: rand.New(rand.NewPCG(1, 2))}
}

func (s *reservoir[T]) add(v T) {
	s.n++
	if len(s.vals) < s.max {
		s.vals = append(s.vals, v)
		return
	}
	if j := s.rng.Int64N(s.n); j < int64(s.max) {
		s.vals[j] = v
	}
}

// sampled reports whether the sample holds fewer values than were added.
func (s *reservoir[T]) sampled() bool { return s.n > int64(len(s.vals)) }

// sample is a sample of finite numbers.
type sample = reservoir[float64]

func newSample(max int) *sample { return newReservoir[float64](max) }

// addFinite adds v when it is a finite number.
func addFinite(s *sample, v float64) {
	if !math.IsNaN(v) && !math.IsInf(v, 0) {
		s.add(v)
	}
}

// point is one request of the J-per-token scatter.
type point struct{ tokens, jPerToken float64 }

// runData is what a run's charts are drawn from, bounded in size.
type runData struct {
	dir string
	id  string
	rep *report.Report // nil: the run wrote no report.json (it was killed)

	records, ok, failed int64
	skippedLines        int64 // lines of records.jsonl that did not parse
	simulated           bool

	ttft, itl, e2e, jpt *sample // successful requests'; jpt: J per output token
	points              *reservoir[point]

	// The run window [t0, t1] (first send, last completion, Unix
	// seconds) in timeBins bins for the requests in flight
	// (time-averaged), and in energyBins bins, none narrower than the
	// energy sampling interval, for the attributed prefill and decode
	// power and the GPUs' power from energy.jsonl (nil without samples).
	t0, t1                   float64
	inFlight                 []float64
	energyBins               int
	prefillW, decodeW        []float64
	hasAttribution, hasPower bool
	powerW                   []float64
	energySkipped            int64
}

// hasEnergy reports whether the run measured energy.
func (r *runData) hasEnergy() bool {
	return (r.rep != nil && r.rep.Energy != nil) || r.hasAttribution || r.hasPower
}

// isRunDir reports whether dir is a run directory: it has records.jsonl.
func isRunDir(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, recordsFile))
	return err == nil && st.Mode().IsRegular()
}

// loadRun reads a run directory: report.json when there is one,
// records.jsonl (twice: the window, then the charts' data) and
// energy.jsonl when there is one.
func loadRun(dir string) (*runData, error) {
	r := &runData{dir: dir, ttft: newSample(maxSample), itl: newSample(maxSample),
		e2e: newSample(maxSample), jpt: newSample(maxSample), points: newReservoir[point](maxScatter)}
	rep, err := report.ReadReport(filepath.Join(dir, report.ReportFileName))
	switch {
	case err == nil:
		r.rep, r.id, r.simulated = rep, rep.RunID, rep.Simulated
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, err
	}
	path := filepath.Join(dir, recordsFile)
	// First pass: the window and the run's id.
	r.t0, r.t1 = math.Inf(1), math.Inf(-1)
	_, err = eachRecord(path, func(rec *record) {
		r.t0, r.t1 = math.Min(r.t0, rec.SendUnix), math.Max(r.t1, rec.DoneUnix)
		if r.id == "" {
			r.id = rec.RunID
		}
	})
	if err != nil {
		return nil, err
	}
	if math.IsInf(r.t0, 0) {
		return nil, fmt.Errorf("%s: no records", path)
	}
	if !(r.t1 > r.t0) {
		r.t1 = r.t0 + 1e-3
	}
	r.inFlight = make([]float64, timeBins)
	// Energy bins span four sampling intervals where the run is long
	// enough for 20 of them, else one (attribution shares each interval's
	// energy among the requests in it, which a bin spreads over their
	// phases: the wider the bin, the less a bin's share strays).
	r.energyBins = timeBins
	if iv := r.energyInterval(); iv > 0 {
		d := r.t1 - r.t0
		n := int(d / (4 * iv))
		if n < 20 {
			n = min(20, int(d/iv))
		}
		r.energyBins = max(1, min(timeBins, n))
	}
	r.prefillW, r.decodeW = make([]float64, r.energyBins), make([]float64, r.energyBins)
	// Second pass: everything else.
	r.skippedLines, err = eachRecord(path, func(rec *record) { r.add(rec) })
	if err != nil {
		return nil, err
	}
	for i := range r.inFlight {
		r.inFlight[i] /= r.binWidth()
	}
	for i := range r.prefillW {
		r.prefillW[i] /= r.energyBinWidth()
		r.decodeW[i] /= r.energyBinWidth()
	}
	if err := r.loadEnergy(filepath.Join(dir, energyFile)); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *runData) binWidth() float64       { return (r.t1 - r.t0) / timeBins }
func (r *runData) energyBinWidth() float64 { return (r.t1 - r.t0) / float64(r.energyBins) }

// energyInterval is the energy sampling interval in seconds: report.json's,
// else energy.jsonl's first header's; 0 when unknown.
func (r *runData) energyInterval() float64 {
	if r.rep != nil && r.rep.Settings.EnergyIntervalS > 0 {
		return r.rep.Settings.EnergyIntervalS
	}
	f, err := os.Open(filepath.Join(r.dir, energyFile))
	if err != nil {
		return 0
	}
	defer f.Close()
	line, _ := bufio.NewReader(io.LimitReader(f, 1<<20)).ReadBytes('\n')
	var h struct {
		IntervalS float64 `json:"_interval_s"`
	}
	if json.Unmarshal(line, &h) != nil {
		return 0
	}
	return h.IntervalS
}

// add takes one record into the charts' data.
func (r *runData) add(rec *record) {
	r.records++
	r.simulated = r.simulated || rec.Simulated
	// Every request was in flight, whatever became of it.
	spread(r.inFlight, r.t0, r.binWidth(), rec.SendUnix, rec.DoneUnix, rec.DoneUnix-rec.SendUnix)
	// The attributed energy, whatever the outcome (docs/energy.md): the
	// prefill share over [send, first], the decode share over [first,
	// done]; all of it is prefill when no text arrived.
	if rec.PrefillEnergyJ != nil || rec.DecodeEnergyJ != nil {
		r.hasAttribution = true
		first := rec.DoneUnix
		if rec.TTFT != nil {
			first = math.Min(rec.SendUnix+*rec.TTFT, rec.DoneUnix)
		}
		if rec.PrefillEnergyJ != nil {
			spread(r.prefillW, r.t0, r.energyBinWidth(), rec.SendUnix, first, *rec.PrefillEnergyJ)
		}
		if rec.DecodeEnergyJ != nil {
			spread(r.decodeW, r.t0, r.energyBinWidth(), first, rec.DoneUnix, *rec.DecodeEnergyJ)
		}
	}
	if rec.Outcome != "ok" {
		r.failed++
		return
	}
	r.ok++
	if rec.TTFT != nil {
		addFinite(r.ttft, *rec.TTFT)
	}
	if rec.E2E != nil {
		addFinite(r.e2e, *rec.E2E)
	}
	for _, v := range rec.ITL {
		addFinite(r.itl, v)
	}
	if rec.EnergyJ != nil && rec.OutputTokens != nil && *rec.OutputTokens > 0 {
		j := *rec.EnergyJ / float64(*rec.OutputTokens)
		addFinite(r.jpt, j)
		r.points.add(point{float64(*rec.OutputTokens), j})
	}
}

// spread adds amount to the bins (of width w from t0) over [a, b],
// uniformly in time; an empty interval puts it all in a's bin. What
// falls outside the bins is dropped.
func spread(bins []float64, t0, w, a, b, amount float64) {
	if math.IsNaN(amount) || math.IsInf(amount, 0) || !(w > 0) {
		return
	}
	n := len(bins)
	if !(b > a) {
		if i := int(math.Floor((a - t0) / w)); i >= 0 && i < n {
			bins[i] += amount
		} else if i == n && a-t0 <= float64(n)*w*(1+1e-12) {
			bins[n-1] += amount // exactly at the window's end
		}
		return
	}
	per := amount / (b - a)
	lo := max(0, int(math.Floor((a-t0)/w)))
	hi := min(n-1, int(math.Floor((b-t0)/w)))
	for i := lo; i <= hi; i++ {
		s, e := t0+float64(i)*w, t0+float64(i+1)*w
		if ov := math.Min(e, b) - math.Max(s, a); ov > 0 {
			bins[i] += per * ov
		}
	}
}

// eachRecord calls fn with each record of a records.jsonl and returns
// how many lines it skipped: those that do not parse (a killed run's cut
// last line) and those longer than maxLine.
func eachRecord(path string, fn func(*record)) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var bad int64
	long, err := eachLine(f, maxLine, func(line []byte) {
		var rec record
		if json.Unmarshal(line, &rec) != nil {
			bad++
			return
		}
		fn(&rec)
	})
	return bad + long, err
}

// eachLine calls fn with each non-empty line of r, without its newline;
// a line longer than max is skipped, and counted.
func eachLine(r io.Reader, max int, fn func([]byte)) (int64, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		long    []byte
		tooLong bool
		skipped int64
	)
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if !tooLong && len(long)+len(chunk) <= max {
				long = append(long, chunk...)
			} else {
				tooLong, long = true, long[:0]
			}
			continue
		}
		line := chunk
		if len(long) > 0 || tooLong {
			if !tooLong && len(long)+len(chunk) <= max {
				line = append(long, chunk...)
			} else {
				line = nil
				skipped++
			}
			long, tooLong = long[:0], false
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			fn(line)
		}
		if err == io.EOF {
			return skipped, nil
		}
		if err != nil {
			return skipped, err
		}
	}
}

// energyHeader is the first line of a run's samples in energy.jsonl;
// energySample each later line (docs/energy.md, "energy.jsonl").
type energyHeader struct {
	RunID *string `json:"_run_id"`
}

type energySample struct {
	TUnix   *float64 `json:"t_unix"`
	GPU     int      `json:"gpu"`
	EnergyJ *float64 `json:"energy_j"`
}

// loadEnergy reads the GPUs' power over the run window from
// energy.jsonl: each GPU's cumulative energy, linear between samples, so
// each bin's power is the energy the GPUs drew in it over its width (NaN
// where the samples do not cover it). Only
// the last block of samples headed by the run's id counts (a file may
// hold several runs). A missing file is no energy.
func (r *runData) loadEnergy(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	type last struct{ t, e float64 }
	var (
		mine       bool
		prev       map[int]last
		power, cov []float64 // energy per bin; GPU-seconds of samples per bin
		found      []float64 // the last block of this run: power, coverage
		foundCov   []float64
		gpus       int
	)
	w := r.energyBinWidth()
	long, err := eachLine(f, 1<<20, func(line []byte) {
		var h energyHeader
		if json.Unmarshal(line, &h) != nil {
			r.energySkipped++
			return
		}
		if h.RunID != nil {
			if mine && power != nil {
				found, foundCov, gpus = power, cov, len(prev)
			}
			mine = *h.RunID == r.id || r.id == ""
			power, cov, prev = nil, nil, map[int]last{}
			if mine {
				power, cov = make([]float64, r.energyBins), make([]float64, r.energyBins)
			}
			return
		}
		if !mine {
			return
		}
		var s energySample
		if json.Unmarshal(line, &s) != nil || s.TUnix == nil || s.EnergyJ == nil {
			r.energySkipped++
			return
		}
		if p, ok := prev[s.GPU]; ok && *s.TUnix > p.t && *s.EnergyJ >= p.e {
			spread(power, r.t0, w, p.t, *s.TUnix, *s.EnergyJ-p.e)
			spread(cov, r.t0, w, p.t, *s.TUnix, *s.TUnix-p.t)
		}
		prev[s.GPU] = last{*s.TUnix, *s.EnergyJ}
	})
	r.energySkipped += long
	if err != nil {
		return err
	}
	if mine && power != nil {
		found, foundCov, gpus = power, cov, len(prev)
	}
	if found == nil {
		return nil
	}
	// A bin the samples cover less than half of (before the first
	// sample, a gap in the file) has no power: NaN, not 0.
	for i := range found {
		if foundCov[i] >= 0.5*w*float64(gpus) {
			found[i] /= w
			r.hasPower = true
		} else {
			found[i] = math.NaN()
		}
	}
	if r.hasPower {
		r.powerW = found
	}
	return nil
}
