package scenario

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeStagesAndRamp(t *testing.T) {
	s, err := Decode(strings.NewReader(`name: cycle
concurrency: 64
stages:
  - {duration: 60s, rate: 5}
  - duration: 1m30s
    rate: 20
    concurrency: 128
  - {duration: 2m, concurrency: 8}   # closed loop
`), "cycle.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []Stage{{Duration: time.Minute, Rate: 5}, {Duration: 90 * time.Second, Rate: 20, Concurrency: 128}, {Duration: 2 * time.Minute, Concurrency: 8}}
	if !reflect.DeepEqual(s.Stages, want) {
		t.Errorf("stages %+v, want %+v", s.Stages, want)
	}
	if !s.Staged() || s.StagesDuration() != 4*time.Minute+30*time.Second || s.TimeLimit() != s.StagesDuration() || !s.OpenLoop() {
		t.Errorf("staged %v, stages last %v, time limit %v, open loop %v", s.Staged(), s.StagesDuration(), s.TimeLimit(), s.OpenLoop())
	}
	if got := FormatStages(s.Stages); got != "1m@5,1m30s@20/c128,2m@c8" {
		t.Errorf("formatted %q", got)
	}

	s, err = Decode(strings.NewReader("name: up\nduration: 5m\nramp: {from: 1, to: 50, duration: 10m}\n"), "up.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if *s.Ramp != (Ramp{From: 1, To: 50, Duration: 10 * time.Minute}) || s.TimeLimit() != 5*time.Minute || s.Ramp.String() != "1:50:10m" {
		t.Errorf("ramp %+v (%s), time limit %v", *s.Ramp, s.Ramp, s.TimeLimit())
	}
}

func TestDecodeStagesErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{
			name: "a bad value names its stage and line",
			yaml: "name: x\nstages:\n  - {duration: 60s, rate: 5}\n  - {duration: 0s, rate: -2}\n",
			want: []string{`test.yaml:4: stages[1].duration: must be more than 0, got 0s`,
				`test.yaml:4: stages[1].rate: must be 0 (a closed-loop stage) or a positive number`},
		},
		{
			name: "a type error in a flow mapping names the key it quotes",
			yaml: "name: x\nstages:\n  - {duration: 60s, rate: fast}\n",
			want: []string{`test.yaml:3: stages[0].rate: want a number, got "fast"`},
		},
		{
			name: "a closed-loop stage without concurrency is reported at the stage",
			yaml: "name: x\nstages:\n  - duration: 60s\n    rate: 5\n  - duration: 60s\n",
			want: []string{`test.yaml:5: stages[1].concurrency: a closed-loop stage (no rate) needs 1 or more requests in flight, got 0`},
		},
		{
			name: "an unknown stage key is suggested",
			yaml: "name: x\nstages:\n  - {duration: 60s, rat: 5}\n",
			want: []string{`test.yaml:3: unknown key "stages.rat" (did you mean "stages.rate"?)`},
		},
		{
			name: "stages are a list",
			yaml: "name: x\nstages: 60s@5\n",
			want: []string{`test.yaml:2: stages: want a list, got "60s@5"`},
		},
		{
			name: "stages or a ramp, and no rate beside them",
			yaml: "name: x\nrate: 3\nstages:\n  - {duration: 60s, rate: 5}\nramp: {from: 1, to: 2, duration: 1m}\n",
			want: []string{`test.yaml:5: ramp: give stages or a ramp, not both`, `test.yaml:2: rate: must be 0 with stages or a ramp`},
		},
		{
			name: "ramp values",
			yaml: "name: x\nramp:\n  from: -1\n  to: .inf\n",
			want: []string{`test.yaml:3: ramp.from: must be 0 or a positive number`, `test.yaml:4: ramp.to: must be 0 or a positive number`,
				`test.yaml:2: ramp.duration: must be more than 0, got 0s`},
		},
		{
			name: "a ramp of no rate",
			yaml: "name: x\nramp: {from: 0, to: 0, duration: 1m}\n",
			want: []string{`test.yaml:2: ramp.to: from 0 to 0: one end must be at least 1e-06 requests per second`},
		},
		{
			name: "a stage's concurrency is bounded",
			yaml: "name: x\nstages:\n  - {duration: 1m, concurrency: 2000000}\n  - {duration: 1m, rate: 1e-9}\n",
			want: []string{`test.yaml:3: stages[0].concurrency: must be at most 1000000`, `test.yaml:4: stages[1].rate: must be 0 (a closed-loop stage) or at least 1e-06`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tt.yaml), "test.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
		})
	}
}

func TestValidateStagesBounds(t *testing.T) {
	many := make([]Stage, MaxStages+1)
	for i := range many {
		many[i] = Stage{Duration: time.Second, Rate: 1}
	}
	bad := make([]Stage, 50)
	long := []Stage{{Duration: MaxStagesDuration, Rate: 1}, {Duration: MaxStagesDuration, Rate: 1}, {Duration: math.MaxInt64, Rate: 1}}
	tests := []struct {
		name   string
		stages []Stage
		want   string
	}{
		{"too many", many, "stages: at most 10000 stages, got 10001"},
		{"many bad ones are reported by the first few", bad, "stages[4].duration: must be more than 0, got 0s; stages[4].concurrency: a closed-loop stage (no rate) needs 1 or more requests in flight, got 0; stages: 45 more stages have problems"},
		{"together too long, even past a duration's range", long, "stages: together must last at most 876000h (a century)"},
		{"the longest", many[:MaxStages], ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Scenario{Name: "t", Stages: tt.stages}
			err := s.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
	if err := (&Scenario{Name: "t", Ramp: &Ramp{From: 1, To: 2, Duration: MaxStagesDuration + 1}}).Validate(); err == nil || !strings.Contains(err.Error(), "ramp.duration: must be at most 876000h") {
		t.Errorf("a ramp past a century: %v", err)
	}
}

func TestParseStages(t *testing.T) {
	got, err := ParseStages("60s@5, 1m30s@0.5,2m@c8,30s@20/c64")
	if err != nil {
		t.Fatal(err)
	}
	want := []Stage{{Duration: time.Minute, Rate: 5}, {Duration: 90 * time.Second, Rate: 0.5}, {Duration: 2 * time.Minute, Concurrency: 8}, {Duration: 30 * time.Second, Rate: 20, Concurrency: 64}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if f := FormatStages(got); f != "1m@5,1m30s@0.5,2m@c8,30s@20/c64" {
		t.Errorf("formatted %q", f)
	}
	for spec, msg := range map[string]string{
		"60s":           `stage 1 "60s": no @ between the duration and the load`,
		"60s@5,60@5":    `stage 2 "60@5": duration "60": want a duration such as 30s, 5m or 1h`,
		"60s@fast":      `stage 1 "60s@fast": rate "fast" is not a number`,
		"60s@c":         `stage 1 "60s@c": concurrency "c": want c and a whole number, e.g. c8`,
		"60s@5/8":       `stage 1 "60s@5/8": concurrency "8": want c and a whole number`,
		"60s@":          `stage 1 "60s@": no rate or concurrency after @`,
		"60s@5,,60s@2":  `stage 2 "": no @`,
		"1h@c2.5":       `concurrency "c2.5"`,
		"1h@5,1h@c2,x@": `stage 3 "x@": duration "x"`,
	} {
		_, err := ParseStages(spec)
		if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "want DURATION@RATE, DURATION@cN or DURATION@RATE/cN") {
			t.Errorf("%q: error %v, want %q and the syntax", spec, err, msg)
		}
	}
}

func TestParseRamp(t *testing.T) {
	r, err := ParseRamp("1:50:10m")
	if err != nil || *r != (Ramp{From: 1, To: 50, Duration: 10 * time.Minute}) {
		t.Fatalf("%+v, %v", r, err)
	}
	for spec, msg := range map[string]string{
		"1:50":       "want FROM:TO:DURATION",
		"a:50:10m":   `FROM "a" is not a number`,
		"1:b:10m":    `TO "b" is not a number`,
		"1:50:10":    `DURATION "10": want a duration`,
		"1:50:10m:x": "want FROM:TO:DURATION",
	} {
		if _, err := ParseRamp(spec); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want %q", spec, err, msg)
		}
	}
}

// Multi-turn replay does not run in stages (a stage's dispatcher sends
// single requests): the combination is refused, naming the key.
func TestValidateMultiTurnWithoutStages(t *testing.T) {
	for _, s := range []Scenario{
		{Name: "t", MultiTurn: true, Stages: []Stage{{Duration: time.Second, Rate: 1}}},
		{Name: "t", MultiTurn: true, Ramp: &Ramp{From: 1, To: 2, Duration: time.Second}},
	} {
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "multi_turn: not with stages or a ramp") {
			t.Errorf("%+v: %v", s, err)
		}
	}
}
