package sim

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestTemplatedTokensAreTheEncodedOnes: the events staged from a stream's
// template are byte for byte those encoding/json writes, for chat (content
// and reasoning) and text completions, model names and token texts that
// need escaping (which fall back to encoding/json), the first and last
// token and a garbled one.
func TestTemplatedTokensAreTheEncodedOnes(t *testing.T) {
	texts := []string{"the", " energy", " <joules>", " a&b", ` "quoted"`, " back\\slash", " é", " \u2028", "\x00", ""}
	for _, model := range []string{"tokenwatt-sim", `org/"odd" <model> & é`, "\x00tokenwatt\x00"} {
		for _, a := range []api{apiChat, apiCompletions} {
			for _, fault := range []fault{faultNone, faultGarbage} {
				const n = 12
				p := &plan{api: a, id: "chatcmpl-sim-0123456789abcdef", created: 1733945600, outputTokens: n,
					finishReason: finishLength, fault: fault, faultToken: 5, rng: rand.New(rand.NewPCG(1, 2))}
				if a == apiChat {
					p.reasoning = n / 2
				}
				fast, slow := newSSEOutput(nil, p, model, false), newSSEOutput(nil, p, model, false)
				slow.tmpl.off = true
				templated := 0
				for k := 1; k <= n; k++ {
					text := texts[k%len(texts)]
					if err := fast.stage(k, text); err != nil {
						t.Fatal(err)
					}
					if err := slow.stage(k, text); err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(fast.next, slow.next) {
						t.Errorf("model %q api %d fault %d token %d %q:\n templated %s\n encoded   %s", model, a, fault, k, text, fast.next, slow.next)
					}
					if fast.tmpl.tmpl[0].before != nil || fast.tmpl.tmpl[1].before != nil {
						templated++
					}
				}
				if wantSome := model != "\x00tokenwatt\x00"; wantSome != (templated > 0) {
					t.Errorf("model %q api %d: %d tokens after a template was built, want some: %v", model, a, templated, wantSome)
				}
			}
		}
	}
}
