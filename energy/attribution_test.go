package energy

import (
	"math"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var epoch = time.Unix(1_700_000_000, 0)

func at(ms float64) time.Time { return epoch.Add(time.Duration(ms * float64(time.Millisecond))) }

// energyAt interpolates a sample series like Attribution does.
func energyAt(ts []time.Time, es []float64, t time.Time) float64 {
	for i := 1; i < len(ts); i++ {
		if !t.After(ts[i]) {
			return interpolate(energyPoint{ts[i-1], es[i-1]}, energyPoint{ts[i], es[i]}, t)
		}
	}
	return es[len(es)-1]
}

func TestAttributionConservesEnergy(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// Samples every 50-150 ms over 0-5 s, energy rising by 0-50 J each.
		var ts []time.Time
		var es []float64
		now, e := -200.0, 0.0
		for now < 5200 {
			ts = append(ts, at(now))
			es = append(es, e)
			now += rapid.Float64Range(50, 150).Draw(t, "dt")
			if rapid.Bool().Draw(t, "flat") {
				continue
			}
			e += rapid.Float64Range(0, 50).Draw(t, "de")
		}
		// Requests inside [0, 5000] ms; some never get a first token.
		n := rapid.IntRange(1, 12).Draw(t, "n")
		spans := make([]Span, n)
		for i := range spans {
			send := rapid.Float64Range(0, 4500).Draw(t, "send")
			done := send + rapid.Float64Range(0, 500).Draw(t, "len")
			s := Span{Send: at(send), Done: at(done)}
			if rapid.Bool().Draw(t, "hasFirst") {
				s.First = at(rapid.Float64Range(send, done).Draw(t, "first"))
			}
			spans[i] = s
		}

		// Feed samples and completions in time order, as a run does:
		// a request is in flight from its send until its completion.
		order := make([]int, n)
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(x, y int) int { return spans[x].Done.Compare(spans[y].Done) })
		a := NewAttribution[int]()
		released := map[int]Share{}
		collect := func(rs []Released[int]) {
			for _, r := range rs {
				id := r.ID
				if _, dup := released[id]; dup {
					t.Fatalf("request %d released twice", id)
				}
				released[id] = r.Share
			}
		}
		si := 0
		for k, i := range order {
			for si < len(ts) && !ts[si].After(spans[i].Done) {
				a.AddSample(ts[si], es[si])
				si++
			}
			a.Add(spans[i], i)
			var oldest time.Time
			for _, j := range order[k+1:] {
				if s := spans[j].Send; !s.After(spans[i].Done) && (oldest.IsZero() || s.Before(oldest)) {
					oldest = s
				}
			}
			collect(a.Advance(oldest))
		}
		for ; si < len(ts); si++ {
			a.AddSample(ts[si], es[si])
		}
		collect(a.Finish())

		if len(released) != n {
			t.Fatalf("%d of %d requests released", len(released), n)
		}
		t0, t1 := a.Window()
		want := energyAt(ts, es, t1) - energyAt(ts, es, t0)
		sum := 0.0
		for id, sh := range released {
			if sh.Prefill < 0 || sh.Decode < 0 {
				t.Fatalf("request %d got negative energy %+v", id, sh)
			}
			if spans[id].First.IsZero() && sh.Decode != 0 {
				t.Fatalf("request %d had no first token but decode energy %v", id, sh.Decode)
			}
			sum += sh.Total()
		}
		pre, dec, idle := a.Totals()
		if idle < 0 {
			t.Fatalf("negative idle energy %v", idle)
		}
		if math.Abs(pre+dec-sum) > 1e-9*math.Max(1, sum) {
			t.Fatalf("phase totals %v+%v != released %v", pre, dec, sum)
		}
		if math.Abs(sum+idle-want) > 1e-9*math.Max(1, want) {
			t.Fatalf("requests %v + idle %v = %v, want E(T1)-E(T0) = %v", sum, idle, sum+idle, want)
		}
	})
}

func TestAttributionByHand(t *testing.T) {
	// 100 J/s throughout, sampled every 100 ms from -100 ms to 1100 ms.
	a := NewAttribution[string]()
	for ms := -100.0; ms <= 1100; ms += 100 {
		a.AddSample(at(ms), (ms+100)/1000*100)
	}
	// A: 0-600 ms, first token at 200 ms. B: 300-1000 ms, first at 400.
	a.Add(Span{Send: at(0), First: at(200), Done: at(600)}, "A")
	a.Add(Span{Send: at(300), First: at(400), Done: at(1000)}, "B")
	got := map[string]Share{}
	for _, r := range a.Finish() {
		got[r.ID] = r.Share
	}
	// [0,300): A alone, 30 J: prefill 20 (0-200), decode 10.
	// [300,600): shared evenly, 15 J each. A decode 15; B prefill 5 (300-400) + decode 10.
	// [600,1000): B alone, 40 J decode. No idle: someone is always in flight.
	near := func(name string, got, want float64) {
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("A prefill", got["A"].Prefill, 20)
	near("A decode", got["A"].Decode, 25)
	near("B prefill", got["B"].Prefill, 5)
	near("B decode", got["B"].Decode, 50)
	_, _, idle := a.Totals()
	near("idle", idle, 0)
}

func TestAttributionIdleGapAndPartialCover(t *testing.T) {
	// 10 J/s; samples every second. Request 0-0.5 s, then a gap, then a
	// request 2-3 s: [0.5,2] is idle (15 J); the run window is [0, 3].
	a := NewAttribution[int]()
	for s := -1.0; s <= 4; s++ {
		a.AddSample(at(s*1000), (s+1)*10)
	}
	a.Add(Span{Send: at(0), Done: at(500)}, 1)
	if r := a.Advance(time.Time{}); len(r) != 1 || r[0].Share.Prefill != 5 {
		t.Fatalf("first request: %+v", r)
	}
	a.Add(Span{Send: at(2000), First: at(2500), Done: at(3000)}, 2)
	r := a.Finish()
	if len(r) != 1 || r[0].Share.Total() != 10 {
		t.Fatalf("second request: %+v", r)
	}
	if _, _, idle := a.Totals(); math.Abs(idle-15) > 1e-9 {
		t.Fatalf("idle %v, want 15", idle)
	}
}

func TestAttributionWaitsForRequestsInFlight(t *testing.T) {
	a := NewAttribution[string]()
	for ms := 0.0; ms <= 1000; ms += 100 {
		a.AddSample(at(ms), ms)
	}
	a.Add(Span{Send: at(500), Done: at(600)}, "short")
	// A request sent at 100 ms is still in flight: nothing after 100 ms
	// is final, so the short request is held back.
	if r := a.Advance(at(100)); len(r) != 0 {
		t.Fatalf("released %+v while an overlapping request is in flight", r)
	}
	a.Add(Span{Send: at(100), Done: at(900)}, "long")
	r := a.Advance(time.Time{})
	if len(r) != 2 {
		t.Fatalf("released %d, want 2", len(r))
	}
}
