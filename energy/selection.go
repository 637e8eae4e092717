package energy

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// GPU selection specs (--gpus).
const (
	// GPUsAuto: the GPUs that serve the model. Local sources: those in
	// CUDA_VISIBLE_DEVICES when it is set, else those running a compute
	// process, else all with a warning. Scrape sources: all, with a
	// warning when there is more than one.
	GPUsAuto = "auto"
	// GPUsAll: every GPU the source sees.
	GPUsAll = "all"
)

// GPUSpec is a parsed --gpus value.
type GPUSpec struct {
	Auto bool     // "auto" or empty
	All  bool     // "all"
	IDs  []string // otherwise: indices and UUIDs (GPU-… or MIG-…), as given
}

// ParseGPUs parses --gpus: auto (or empty), all, or a comma list of GPU
// indices and UUIDs. MIG UUIDs name their parent GPU.
func ParseGPUs(s string) (GPUSpec, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", GPUsAuto:
		return GPUSpec{Auto: true}, nil
	case GPUsAll:
		return GPUSpec{All: true}, nil
	}
	var spec GPUSpec
	for _, id := range strings.Split(s, ",") {
		id = strings.TrimSpace(id)
		switch {
		case id == "":
			return GPUSpec{}, badChoicef("--gpus %q: empty entry (use auto, all, or a comma list of indices and UUIDs, e.g. 0,2 or GPU-8f2c…)", s)
		case isUUID(id):
		default:
			if n, err := strconv.Atoi(id); err != nil || n < 0 {
				return GPUSpec{}, badChoicef("--gpus %q: %q is neither a GPU index nor a GPU-/MIG- UUID (use auto, all, or a comma list such as 0,2)", s, id)
			}
		}
		if !slices.Contains(spec.IDs, id) {
			spec.IDs = append(spec.IDs, id)
		}
	}
	return spec, nil
}

// String is the spec as --gpus takes it.
func (s GPUSpec) String() string {
	switch {
	case s.All:
		return GPUsAll
	case len(s.IDs) > 0:
		return strings.Join(s.IDs, ",")
	}
	return GPUsAuto
}

// ChoiceError is a GPU choice that names no GPU the source has, or is
// malformed: a --gpus list, CUDA_VISIBLE_DEVICES, or a label selector
// given to a source that takes none. It is the user's to fix: auto
// reports it rather than trying the next source (which would see the
// same GPUs) or settling for no energy.
type ChoiceError struct{ Err error }

func (e *ChoiceError) Error() string { return e.Err.Error() }
func (e *ChoiceError) Unwrap() error { return e.Err }

// badChoice marks err (nil stays nil) as a ChoiceError.
func badChoice(err error) error {
	if err == nil {
		return nil
	}
	return &ChoiceError{err}
}

func badChoicef(format string, args ...any) error { return badChoice(fmt.Errorf(format, args...)) }

// isUUID tells a GPU or MIG UUID (or a simulated GPU's SIM-…) from an
// index.
func isUUID(id string) bool {
	u := strings.ToUpper(id)
	return strings.HasPrefix(u, "GPU-") || strings.HasPrefix(u, "MIG-") || strings.HasPrefix(u, "SIM-")
}

// gpuCandidate is a GPU a source found, with what selection needs to
// know about it.
type gpuCandidate struct {
	Device
	// Busy: a compute process runs on it (NVML's running-process list);
	// false when unknown.
	Busy bool
	// MIGUUIDs are its MIG devices' UUIDs (MIG-…), which name it.
	MIGUUIDs []string
}

// Selection is how a source chose its GPUs, for the log, the run's
// record and the summary table.
type Selection struct {
	// How the GPUs were chosen: "all", "--gpus", "CUDA_VISIBLE_DEVICES",
	// "compute processes", "all (no GPU runs a compute process)",
	// "all (scrape source)", "all (remote host engine)", or "label
	// selector".
	How string
	// Warning is non-empty when the choice may count GPUs that do not
	// serve the model (several GPUs and no explicit choice).
	Warning string
}

// selectionReporter is implemented by sources that chose among GPUs.
type selectionReporter interface{ Selection() Selection }

// SelectionOf is how src chose its GPUs; the zero Selection for sources
// that did not choose (nil, or a test's fake).
func SelectionOf(src Source) Selection {
	if r, ok := src.(selectionReporter); ok {
		return r.Selection()
	}
	return Selection{}
}

// simulatedReporter is implemented by sources that can tell simulated
// GPUs from real ones (scrape: the simulator's /metrics).
type simulatedReporter interface{ Simulated() string }

// SimulatedBy says why src's GPUs are simulated, e.g.
// `tokenwatt_energy_exporter_info says simulated="true"`; "" when src
// is nil or its GPUs are real (as far as it can tell). A run whose energy
// is simulated is a simulated run.
func SimulatedBy(src Source) string {
	if r, ok := src.(simulatedReporter); ok {
		return r.Simulated()
	}
	return ""
}

// UUIDs are the devices' UUIDs, in order: the run's record of which GPUs
// it measured.
func UUIDs(devs []Device) []string {
	out := make([]string, len(devs))
	for i, d := range devs {
		out[i] = d.UUID
	}
	return out
}

// selectOptions say what selectGPUs may consult beyond the spec.
type selectOptions struct {
	// Local: the GPUs are in this host, so CUDA_VISIBLE_DEVICES and the
	// process list mean something.
	Local bool
	// CUDAVisible is CUDA_VISIBLE_DEVICES ("" when unset).
	CUDAVisible string
	// Source names the source in messages ("nvml", "dcgm", "energy
	// source scrape:URL").
	Source string
	// Scrape: the GPUs are a scrape endpoint's, which --gpu-selector can
	// also choose.
	Scrape bool
}

// selectGPUs picks candidates per spec and returns their positions in
// cands, in cands' order, with how they were chosen.
func selectGPUs(cands []gpuCandidate, spec GPUSpec, o selectOptions) ([]int, Selection, error) {
	all := make([]int, len(cands))
	for i := range cands {
		all[i] = i
	}
	if len(cands) == 0 {
		return nil, Selection{}, fmt.Errorf("%s: no GPU found", o.Source)
	}
	switch {
	case spec.All:
		return all, Selection{How: "all"}, nil
	case len(spec.IDs) > 0:
		idx, err := matchIDs(cands, spec.IDs, o.Source, "--gpus")
		return idx, Selection{How: "--gpus"}, badChoice(err)
	case !o.Local:
		// A scrape endpoint or a remote nv-hostengine cannot tell which
		// GPUs run the model.
		sel := Selection{How: "all (remote host engine)"}
		fix := "pass --gpus"
		if o.Scrape {
			sel.How, fix = "all (scrape source)", "pass --gpus or --gpu-selector"
		}
		if len(cands) > 1 {
			sel.Warning = fmt.Sprintf("%s: counting all %d GPUs (%s): %s to count only those that serve the model", o.Source, len(cands), names(cands, all), fix)
		}
		return all, sel, nil
	}
	if v := strings.TrimSpace(o.CUDAVisible); v != "" {
		idx, err := matchCUDAVisible(cands, v)
		if err != nil {
			return nil, Selection{}, badChoicef("%s: %w (or pass --gpus)", o.Source, err)
		}
		return idx, Selection{How: "CUDA_VISIBLE_DEVICES"}, nil
	}
	var busy []int
	for i, c := range cands {
		if c.Busy {
			busy = append(busy, i)
		}
	}
	if len(busy) > 0 {
		return busy, Selection{How: "compute processes"}, nil
	}
	sel := Selection{How: "all (no GPU runs a compute process)"}
	if len(cands) > 1 {
		sel.Warning = fmt.Sprintf("%s: no GPU runs a compute process; counting all %d GPUs (%s): pass --gpus to count only those that serve the model", o.Source, len(cands), names(cands, all))
	}
	return all, sel, nil
}

// matchIDs resolves indices and UUIDs (a MIG UUID names its parent).
func matchIDs(cands []gpuCandidate, ids []string, source, flag string) ([]int, error) {
	chosen := make([]bool, len(cands))
	for _, id := range ids {
		i := findGPU(cands, id, false)
		if i < 0 {
			return nil, fmt.Errorf("%s: %s %s: no such GPU (this source has %s)", source, flag, id, names(cands, nil))
		}
		chosen[i] = true
	}
	var idx []int
	for i, c := range chosen {
		if c {
			idx = append(idx, i)
		}
	}
	return idx, nil
}

// findGPU is the position of the GPU id names (an index, a GPU UUID or
// one of its MIG UUIDs; with prefix, a unique UUID prefix as CUDA
// accepts), or -1.
func findGPU(cands []gpuCandidate, id string, prefix bool) int {
	if !isUUID(id) {
		n, err := strconv.Atoi(id)
		if err != nil {
			return -1
		}
		for i, c := range cands {
			if c.Index == n {
				return i
			}
		}
		return -1
	}
	match := func(u string) bool {
		if prefix {
			return len(u) >= len(id) && strings.EqualFold(u[:len(id)], id)
		}
		return strings.EqualFold(u, id)
	}
	found := -1
	for i, c := range cands {
		if match(c.UUID) || slices.ContainsFunc(c.MIGUUIDs, match) {
			if found >= 0 && found != i {
				return -1 // an ambiguous prefix
			}
			found = i
		}
	}
	return found
}

// matchCUDAVisible resolves CUDA_VISIBLE_DEVICES as CUDA does: a comma
// list of indices (read in PCI bus order, which is NVML's, and CUDA's
// with CUDA_DEVICE_ORDER=PCI_BUS_ID or identical GPUs) or UUID prefixes;
// the list ends at the first entry that names no GPU.
func matchCUDAVisible(cands []gpuCandidate, v string) ([]int, error) {
	chosen := make([]bool, len(cands))
	n := 0
	for _, id := range strings.Split(v, ",") {
		i := findGPU(cands, strings.TrimSpace(id), true)
		if i < 0 {
			break
		}
		if !chosen[i] {
			chosen[i] = true
			n++
		}
	}
	if n == 0 {
		return nil, errors.New("CUDA_VISIBLE_DEVICES=" + v + " names none of this host's GPUs (" + names(cands, nil) + ")")
	}
	var idx []int
	for i, c := range chosen {
		if c {
			idx = append(idx, i)
		}
	}
	return idx, nil
}

// names lists candidates (all when idx is nil) as "0 GPU-…, 1 GPU-…".
func names(cands []gpuCandidate, idx []int) string {
	if idx == nil {
		idx = make([]int, len(cands))
		for i := range cands {
			idx[i] = i
		}
	}
	parts := make([]string, len(idx))
	for k, i := range idx {
		parts[k] = fmt.Sprintf("%d %s", cands[i].Index, cands[i].UUID)
	}
	return strings.Join(parts, ", ")
}

// cudaVisibleDevices is CUDA_VISIBLE_DEVICES, or "" when unset.
func cudaVisibleDevices() string { return os.Getenv("CUDA_VISIBLE_DEVICES") }

// gpuUsage is what NVML says of a local GPU, for selection.
type gpuUsage struct {
	Busy     bool     // a compute process runs on it
	MIG      bool     // MIG mode is on
	MIGUUIDs []string // its MIG devices' UUIDs
}

// localGPUUsage reads through NVML, by GPU UUID, which of this host's GPUs
// run a compute process and their MIG devices: the dcgm source asks it,
// since DCGM's own process accounting needs a watch set up in advance.
// An error (no NVML) leaves auto selection to count every GPU.
var localGPUUsage = func() (map[string]gpuUsage, error) {
	return nil, errors.New("nvml: GPU usage not available in this build")
}

// Warnings are the doubts about src's figures, for the log and the
// summary: the selection's warning, and that a MIG GPU's energy is the
// whole physical GPU's (every instance's, not only the model's).
func Warnings(src Source) []string {
	if src == nil {
		return nil
	}
	var w []string
	if s := SelectionOf(src).Warning; s != "" {
		w = append(w, s)
	}
	var mig []string
	for _, d := range src.Devices() {
		if d.MIG {
			mig = append(mig, deviceName(d))
		}
	}
	if len(mig) > 0 {
		w = append(w, fmt.Sprintf("%s: MIG mode on; energy is the whole physical GPU's, including instances that do not serve the model", strings.Join(mig, ", ")))
	}
	return w
}
