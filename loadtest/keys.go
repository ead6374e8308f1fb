package loadtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
)

// KeyChooser picks the index of a key in [0, n) for one request. Index 0 is
// the most popular key under the skewed distributions.
type KeyChooser interface {
	Next(r *rand.Rand) int
}

// KeySpec configures the key distribution.
type KeySpec struct {
	// Distribution is "uniform" (the default), "zipf" or "hotspot".
	Distribution string `json:"distribution,omitempty"`
	// S is the Zipf exponent (> 0; values at or below 1 are allowed).
	// Default 1.1.
	S float64 `json:"s,omitempty"`
	// HotKeys is the fraction of keys that are hot (hotspot). Default 0.01.
	HotKeys float64 `json:"hot_keys,omitempty"`
	// HotTraffic is the fraction of requests that go to the hot keys
	// (hotspot). Default 0.9.
	HotTraffic float64 `json:"hot_traffic,omitempty"`
}

// NewKeyChooser returns a chooser over n keys following spec.
func NewKeyChooser(spec KeySpec, n int) (KeyChooser, error) {
	if n <= 0 {
		return nil, fmt.Errorf("loadtest: key space is empty")
	}
	switch spec.Distribution {
	case "", "uniform":
		return uniform(n), nil
	case "zipf":
		s := spec.S
		if s == 0 {
			s = 1.1
		}
		return NewZipf(s, n)
	case "hotspot":
		return newHotspot(spec, n)
	}
	return nil, fmt.Errorf("loadtest: unknown key distribution %q (uniform, zipf, hotspot)", spec.Distribution)
}

type uniform int

func (u uniform) Next(r *rand.Rand) int { return r.IntN(int(u)) }

// Zipf draws ranks with P(k) proportional to 1/(k+1)^s over a finite key
// space. Unlike math/rand/v2's Zipf it accepts any s > 0, including s <= 1
// (the usual skew of web caches), by inverting a precomputed CDF.
type Zipf struct {
	cdf []float64
}

// NewZipf returns a Zipf chooser with exponent s over n keys.
func NewZipf(s float64, n int) (*Zipf, error) {
	if !(s > 0) || math.IsInf(s, 0) {
		return nil, fmt.Errorf("loadtest: zipf exponent must be > 0, got %v", s)
	}
	if n <= 0 {
		return nil, fmt.Errorf("loadtest: key space is empty")
	}
	cdf := make([]float64, n)
	sum := 0.0
	for k := range n {
		sum += math.Pow(float64(k+1), -s)
		cdf[k] = sum
	}
	for k := range cdf {
		cdf[k] /= sum
	}
	cdf[n-1] = 1
	return &Zipf{cdf: cdf}, nil
}

// Prob returns the probability of rank k.
func (z *Zipf) Prob(k int) float64 {
	if k == 0 {
		return z.cdf[0]
	}
	return z.cdf[k] - z.cdf[k-1]
}

// Next returns a rank in [0, n).
func (z *Zipf) Next(r *rand.Rand) int {
	u := r.Float64()
	return sort.SearchFloat64s(z.cdf, u)
}

// hotspot sends hotTraffic of the requests to the first hot keys, uniformly,
// and the rest uniformly to the others.
type hotspot struct {
	n, hot  int
	traffic float64
}

func newHotspot(spec KeySpec, n int) (*hotspot, error) {
	keys, traffic := spec.HotKeys, spec.HotTraffic
	if keys == 0 {
		keys = 0.01
	}
	if traffic == 0 {
		traffic = 0.9
	}
	if keys <= 0 || keys > 1 || traffic < 0 || traffic > 1 {
		return nil, fmt.Errorf("loadtest: hotspot fractions must be in (0,1], got hot_keys=%v hot_traffic=%v", keys, traffic)
	}
	hot := max(1, int(math.Ceil(keys*float64(n))))
	return &hotspot{n: n, hot: min(hot, n), traffic: traffic}, nil
}

func (h *hotspot) Next(r *rand.Rand) int {
	if h.hot == h.n || r.Float64() < h.traffic {
		return r.IntN(h.hot)
	}
	return h.hot + r.IntN(h.n-h.hot)
}
