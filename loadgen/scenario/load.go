package scenario

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/tokenwatt/tokenwatt/configs"
	"github.com/tokenwatt/tokenwatt/loadgen/lengths"
)

// The values Validate accepts for the enumerated scenario keys. The empty
// string is accepted too and means "the default".
var (
	scenarioBackends = []string{"openai", "vllm", "pytorch"}
	scenarioAPIs     = []string{"chat", "completions"}
	scenarioArrivals = []string{ArrivalConstant, ArrivalPoisson, ArrivalGamma}
	// scenarioDatasetFormats are loadgen/dataset's formats (this package
	// may not import it).
	scenarioDatasetFormats = []string{"auto", "prompt", "chat", "sharegpt"}
	scenarioHistories      = []string{HistoryServer, HistoryDataset}
	scenarioThinkTimes     = []string{ThinkConstant, ThinkExponential}
)

// Builtins decodes every scenario embedded from configs/scenarios
// and returns them sorted by name.
func Builtins() ([]Scenario, error) {
	names, err := builtinNames()
	if err != nil {
		return nil, err
	}
	out := make([]Scenario, 0, len(names))
	for _, name := range names {
		s, err := loadBuiltin(name)
		if err != nil {
			return nil, err
		}
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Scenario) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Load returns the built-in scenario called nameOrPath, or decodes
// the YAML file at nameOrPath. Anything that contains a path separator or
// ends in .yaml or .yml is a path; anything else is a built-in name, and
// an unknown name is an error that lists the built-ins. The scenario is
// validated.
func Load(nameOrPath string) (*Scenario, error) {
	if !isScenarioPath(nameOrPath) {
		return loadBuiltin(nameOrPath)
	}
	data, err := os.ReadFile(nameOrPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("scenario file %s does not exist (built-in scenarios: %s)", nameOrPath, builtinList())
	}
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	return Decode(bytes.NewReader(data), nameOrPath)
}

// Decode decodes and validates one scenario from r. source names
// r in errors (a file path, conventionally), which take the form
// "source:line: problem". Decoding is strict: a key that Scenario does not
// have is an error, with a suggestion when it is close to a known key. A
// scenario without a name takes source's base name without extension.
func Decode(r io.Reader, source string) (*Scenario, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read scenario %s: %w", source, err)
	}
	var s Scenario
	doc, err := decodeStrict(data, source, &s)
	if err != nil {
		return nil, err
	}
	if s.Name == "" {
		s.Name = strings.TrimSuffix(filepath.Base(source), filepath.Ext(source))
	}
	if err := s.Validate(); err != nil {
		return nil, doc.locate(source, err)
	}
	return &s, nil
}

// Validate checks that every value is one tokenwatt can run. Each problem
// names the key (as in a scenario file) and, for enumerations, the allowed
// values; all problems are reported, separated by "; ".
func (s *Scenario) Validate() error {
	var errs keyErrors
	add := func(key, format string, args ...any) {
		errs = append(errs, &keyError{key: key, msg: fmt.Sprintf(format, args...)})
	}
	oneOf := func(key, value string, allowed []string) {
		if value != "" && !slices.Contains(allowed, value) {
			add(key, "%q is not supported (allowed: %s)", value, strings.Join(allowed, ", "))
		}
	}
	nonNegative := func(key string, v int) {
		if v < 0 {
			add(key, "must be 0 or more, got %d", v)
		}
	}
	atMost := func(key string, v, limit int, hint string) {
		if v > limit {
			add(key, "must be at most %d, got %d%s", limit, v, hint)
		}
	}

	if s.Name == "" {
		add("name", "must not be empty: it labels every record and metric of the run")
	}
	oneOf("backend", s.Backend, scenarioBackends)
	oneOf("api", s.API, scenarioAPIs)
	oneOf("arrival", s.Arrival, scenarioArrivals)
	oneOf("dataset_format", s.DatasetFormat, scenarioDatasetFormats)
	if s.Endpoint != "" {
		if u, err := url.Parse(s.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("endpoint", "%q is not an http(s) URL (e.g. http://localhost:8000/v1)", s.Endpoint)
		}
	}

	nonNegative("num_samples", s.NumSamples)
	nonNegative("concurrency", s.Concurrency)
	nonNegative("warmup", s.Warmup)
	nonNegative("max_tokens", s.MaxTokens)
	nonNegative("min_tokens", s.MinTokens)
	nonNegative("sim_fallback_mean_tokens", s.SimFallbackMeanTokens)
	nonNegative("max_consecutive_failures", s.MaxConsecutiveFailures)
	atMost("num_samples", s.NumSamples, MaxRequests, " (for a longer run give a duration, or 0 to run until interrupted)")
	atMost("warmup", s.Warmup, MaxRequests, "")
	atMost("concurrency", s.Concurrency, MaxConcurrency, "")
	if s.Duration < 0 {
		add("duration", "must be 0 (no limit) or more, got %s", s.Duration)
	}
	if s.IdleBaseline < 0 {
		add("idle_baseline", "must be 0 (none) or more, got %s", s.IdleBaseline)
	}
	if s.Timeout < 0 {
		add("timeout", "must be 0 (none) or more, got %s", s.Timeout)
	}
	switch {
	case !(s.Rate >= 0) || math.IsInf(s.Rate, 0):
		add("rate", "must be 0 (closed loop) or a positive number of requests per second, got %v", s.Rate)
	case s.Rate > 0 && s.Rate < MinRate:
		add("rate", "must be 0 (closed loop) or at least %g requests per second (one every 11.6 days), got %v", MinRate, s.Rate)
	}
	switch {
	case !(s.Burstiness >= 0) || math.IsInf(s.Burstiness, 0):
		add("burstiness", "must be a positive number, got %v", s.Burstiness)
	case s.Arrival == ArrivalGamma && s.Burstiness == 0:
		add("burstiness", "must be > 0 with arrival gamma (1 is poisson, < 1 burstier, > 1 more regular)")
	}
	s.validateStages(add)
	if s.MaxTokens > 0 && s.MinTokens > s.MaxTokens {
		add("min_tokens", "%d is more than max_tokens %d", s.MinTokens, s.MaxTokens)
	}
	for _, d := range []struct {
		key string
		d   lengths.Dist
	}{{"input_len", s.InputLen}, {"output_len", s.OutputLen}} {
		if err := d.d.Validate(); err != nil {
			add(d.key, "%v", err)
		}
	}
	if !s.InputLen.IsZero() && s.Dataset != "" && s.Dataset != "synthetic" && !strings.HasPrefix(s.Dataset, "synthetic:") {
		add("input_len", "sets the length of synthetic prompts, but the dataset is %s: use dataset synthetic (or leave input_len out)", s.Dataset)
	}
	if s.IgnoreEOS && s.MaxTokens == 0 && s.OutputLen.IsZero() {
		add("ignore_eos", "needs max_tokens > 0, or every request generates until the model's context is full")
	}
	if t := s.Temperature; t != nil && (!(*t >= 0) || math.IsInf(*t, 0)) {
		add("temperature", "must be 0 (greedy) or more, got %v", *t)
	}
	if len(s.ExtraBody) > 0 {
		if _, err := json.Marshal(s.ExtraBody); err != nil {
			add("extra_body", "cannot be sent as JSON (%s): use string keys, and numbers that are finite", strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	oneOf("history", s.History, scenarioHistories)
	oneOf("think_time_distribution", s.ThinkTimeDistribution, scenarioThinkTimes)
	if s.ThinkTime < 0 {
		add("think_time", "must be 0 (none) or more, got %s", s.ThinkTime)
	}
	if s.MultiTurn && (len(s.Stages) > 0 || s.Ramp != nil) {
		add("multi_turn", "not with stages or a ramp yet: a stage sends single requests")
	}
	if !s.MultiTurn {
		for _, k := range []struct {
			key string
			set bool
		}{{"history", s.History != ""}, {"think_time", s.ThinkTime != 0}, {"think_time_distribution", s.ThinkTimeDistribution != ""}} {
			if k.set {
				add(k.key, "applies to multi-turn conversations only: set multi_turn: true (--multi-turn)")
			}
		}
	}
	if s.SLO != nil {
		if err := s.SLO.check(); err != nil {
			add("slo", "%v", err)
		} else if s.Stream != nil && !*s.Stream && (s.SLO.TTFT > 0 || s.SLO.TPOT > 0) {
			add("slo", "ttft and tpot are not measured without streaming (stream: false): bound e2e only")
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// keyError is one invalid value, named by its key as written in the file.
type keyError struct {
	key string // dotted path, e.g. "max_tokens" or "scenario.num_samples"
	msg string
}

func (e *keyError) Error() string { return e.key + ": " + e.msg }

// keyErrors collects every invalid value of a file, so a user fixes them
// in one go rather than one run at a time.
type keyErrors []*keyError

func (e keyErrors) Error() string {
	parts := make([]string, len(e))
	for i, ke := range e {
		parts[i] = ke.Error()
	}
	return strings.Join(parts, "; ")
}

func loadBuiltin(name string) (*Scenario, error) {
	file := path.Join("scenarios", name+".yaml")
	data, err := configs.Scenarios.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		names, _ := builtinNames()
		hint := ""
		if s := closest(name, names); s != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", s)
		}
		return nil, fmt.Errorf("unknown scenario %q%s; built-in scenarios: %s; or give the path of a YAML scenario file",
			name, hint, builtinList())
	}
	if err != nil {
		return nil, fmt.Errorf("read built-in scenario %q: %w", name, err)
	}
	s, err := Decode(bytes.NewReader(data), "configs/"+file)
	if err != nil {
		return nil, fmt.Errorf("built-in scenario %q: %w", name, err)
	}
	return s, nil
}

// builtinNames lists the embedded scenario files' names, sorted.
func builtinNames() ([]string, error) {
	entries, err := configs.Scenarios.ReadDir("scenarios")
	if err != nil {
		return nil, fmt.Errorf("list built-in scenarios: %w", err)
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok && !e.IsDir() {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

func builtinList() string {
	names, err := builtinNames()
	if err != nil {
		return err.Error()
	}
	return strings.Join(names, ", ")
}

func isScenarioPath(s string) bool {
	ext := strings.ToLower(filepath.Ext(s))
	return strings.ContainsRune(s, '/') || strings.ContainsRune(s, os.PathSeparator) || ext == ".yaml" || ext == ".yml"
}

// yamlDoc remembers where each key of a decoded file was written, so that
// errors found after decoding (invalid values) still point at a line.
type yamlDoc struct {
	keyLine map[string]int // dotted key path → line of the key
	// Line of a value → dotted key path it belongs to. Scalars and
	// collections are kept apart because a mapping value starts on the
	// line of its first key: yaml.v3 reports a wrongly typed mapping at
	// that line, and a wrongly typed scalar in it at the same line.
	// Items of a list are named by their index: stages[1].rate.
	collectionLine map[int]string
	// A line may hold several scalars (a flow mapping such as
	// {duration: 60s, rate: 5}): each is kept, with its text, so that a
	// type error names the key of the value it quotes.
	scalarLine map[int][]scalarAt
}

// scalarAt is a scalar value of a file and the dotted key path it
// belongs to.
type scalarAt struct{ key, value string }

// scalarKey is the key of the scalar at line whose text is value, else
// of the first scalar of that line.
func (d *yamlDoc) scalarKey(line int, value string) (string, bool) {
	at := d.scalarLine[line]
	for _, s := range at {
		if s.value == value {
			return s.key, true
		}
	}
	if len(at) > 0 {
		return at[0].key, true
	}
	return "", false
}

// locate rewrites err as "source:line: ..." when it names keys of d.
func (d *yamlDoc) locate(source string, err error) error {
	var ke keyErrors
	if !errors.As(err, &ke) {
		return fmt.Errorf("%s: %w", source, err)
	}
	parts := make([]string, len(ke))
	for i, e := range ke {
		if line, ok := d.line(e.key); ok {
			parts[i] = fmt.Sprintf("%s:%d: %s", source, line, e)
		} else {
			parts[i] = fmt.Sprintf("%s: %s", source, e)
		}
	}
	return errors.New(strings.Join(parts, "; "))
}

// line is where key was written or, for a key the file leaves out, its
// nearest parent: a stage's missing concurrency is reported at the stage
// (stages[1]).
func (d *yamlDoc) line(key string) (int, bool) {
	if line, ok := d.keyLine[key]; ok {
		return line, true
	}
	for {
		i := strings.LastIndex(key, ".")
		if i < 0 {
			return 0, false
		}
		key = key[:i]
		if line, ok := d.keyLine[key]; ok {
			return line, true
		}
	}
}

func (d *yamlDoc) walk(n *yaml.Node, prefix string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + k.Value
			}
			if _, seen := d.keyLine[p]; !seen {
				d.keyLine[p] = k.Line
			}
			d.noteValue(v, p)
			d.walk(v, p)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", prefix, i)
			if _, seen := d.keyLine[p]; !seen {
				d.keyLine[p] = item.Line
			}
			d.noteValue(item, p)
			d.walk(item, p)
		}
	}
}

func (d *yamlDoc) noteValue(v *yaml.Node, p string) {
	if v.Kind == yaml.ScalarNode {
		d.scalarLine[v.Line] = append(d.scalarLine[v.Line], scalarAt{key: p, value: v.Value})
		return
	}
	if _, seen := d.collectionLine[v.Line]; !seen {
		d.collectionLine[v.Line] = p
	}
}

// decodeStrict decodes the single YAML document in data into out (a
// pointer to a struct), rejecting keys that out's types do not have. Every
// error names source and, where yaml.v3 knows it, the line.
func decodeStrict(data []byte, source string, out any) (*yamlDoc, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: the file is empty", source)
	} else if err != nil {
		return nil, yamlError(source, err, nil, nil)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("%s:%d: only one YAML document is allowed; remove the second one (after ---)", source, extra.Line)
	} else if !errors.Is(err, io.EOF) {
		return nil, yamlError(source, err, nil, nil)
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: expected a mapping of keys (key: value lines)", source, root.Line)
	}
	doc := &yamlDoc{keyLine: map[string]int{}, scalarLine: map[int][]scalarAt{}, collectionLine: map[int]string{}}
	doc.walk(root.Content[0], "")

	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(out); err != nil {
		known := map[string]structKeys{}
		collectKeys(reflect.TypeOf(out).Elem(), "", known)
		return nil, yamlError(source, err, known, doc)
	}
	return doc, nil
}

// structKeys are the keys a struct type accepts, and the dotted path at
// which that struct sits in the file.
type structKeys struct {
	prefix string
	keys   []string
}

// collectKeys maps each struct type reachable from t (by its name, as
// yaml.v3 writes it in errors) to the keys it accepts.
func collectKeys(t reflect.Type, prefix string, into map[string]structKeys) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	sk := structKeys{prefix: prefix}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(f.Name)
		}
		sk.keys = append(sk.keys, name)
		collectKeys(f.Type, prefix+name+".", into)
	}
	into[t.String()] = sk
}

var (
	reSyntax    = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	reLine      = regexp.MustCompile(`^line (\d+): (.*)$`)
	reUnknown   = regexp.MustCompile(`^field (.+) not found in type (\S+)$`)
	reUnmarshal = regexp.MustCompile("^cannot unmarshal (!!\\w+) ?(`.*`)? into (.+)$")
)

// yamlError turns a yaml.v3 error into "source:line: problem" messages,
// naming unknown keys with a suggestion and wrongly typed values with the
// key and the type wanted. known and doc may be nil for syntax errors.
func yamlError(source string, err error, known map[string]structKeys, doc *yamlDoc) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		if m := reSyntax.FindStringSubmatch(err.Error()); m != nil {
			return fmt.Errorf("%s:%s: %s", source, m[1], m[2])
		}
		return fmt.Errorf("%s: %s", source, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	parts := make([]string, 0, len(te.Errors))
	for _, msg := range te.Errors {
		m := reLine.FindStringSubmatch(msg)
		if m == nil {
			parts = append(parts, fmt.Sprintf("%s: %s", source, msg))
			continue
		}
		line, text := m[1], m[2]
		if u := reUnknown.FindStringSubmatch(text); u != nil {
			sk := known[u[2]]
			msg := fmt.Sprintf("%s:%s: unknown key %q", source, line, sk.prefix+u[1])
			if s := closest(u[1], sk.keys); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", sk.prefix+s)
			}
			parts = append(parts, msg)
			continue
		}
		if u := reUnmarshal.FindStringSubmatch(text); u != nil && doc != nil {
			n, _ := strconv.Atoi(line)
			got := strings.Trim(u[2], "`")
			if got == "" {
				got = describeTag(u[1])
			} else {
				got = strconv.Quote(got)
			}
			want := describeType(u[3])
			key, ok := doc.scalarKey(n, strings.Trim(u[2], "`"))
			if u[1] == "!!map" || u[1] == "!!seq" {
				key, ok = doc.collectionLine[n]
			}
			if ok {
				parts = append(parts, fmt.Sprintf("%s:%s: %s: want %s, got %s", source, line, key, want, got))
			} else {
				parts = append(parts, fmt.Sprintf("%s:%s: want %s, got %s", source, line, want, got))
			}
			continue
		}
		parts = append(parts, fmt.Sprintf("%s:%s: %s", source, line, text))
	}
	return errors.New(strings.Join(parts, "; "))
}

func describeTag(tag string) string {
	switch tag {
	case "!!map":
		return "a mapping"
	case "!!seq":
		return "a list"
	case "!!null":
		return "nothing"
	}
	return tag
}

func describeType(goType string) string {
	t := strings.TrimLeft(goType, "*")
	switch t {
	case "int", "int64", "int32":
		return "an integer"
	case "float64", "float32":
		return "a number"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	case "time.Duration":
		return `a duration such as "30s" or "5m"`
	}
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	}
	return "a mapping of keys"
}

// closest returns the candidate nearest to key by edit distance, ignoring
// case and treating '-' as '_', or "" when none is near enough to be a
// plausible misspelling.
func closest(key string, candidates []string) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	k := norm(key)
	limit := max(1, min(3, len(k)/3))
	best, bestD := "", limit+1
	for _, c := range candidates {
		if d := editDistance(k, norm(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes
// (keys are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
