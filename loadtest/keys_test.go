package loadtest

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestZipfFrequencies(t *testing.T) {
	for _, s := range []float64{0.5, 0.99, 1.0, 1.1, 2} {
		t.Run("", func(t *testing.T) {
			const n, draws = 100, 400_000
			z, err := NewZipf(s, n)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(1, 2))
			counts := make([]int, n)
			for range draws {
				counts[z.Next(r)]++
			}
			var h float64
			for k := 1; k <= n; k++ {
				h += math.Pow(float64(k), -s)
			}
			for _, k := range []int{0, 1, 2, 9, 49, 99} {
				want := math.Pow(float64(k+1), -s) / h
				if math.Abs(z.Prob(k)-want) > 1e-12 {
					t.Errorf("s=%v: Prob(%d) = %v, want %v", s, k, z.Prob(k), want)
				}
				got := float64(counts[k]) / draws
				// 5 standard deviations of a binomial proportion, plus a floor.
				tol := 5*math.Sqrt(want*(1-want)/draws) + 1e-4
				if math.Abs(got-want) > tol {
					t.Errorf("s=%v: frequency of rank %d = %.5f, want %.5f ± %.5f", s, k, got, want, tol)
				}
			}
		})
	}
}

func TestZipfRejectsBadExponent(t *testing.T) {
	for _, s := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		if _, err := NewZipf(s, 10); err == nil {
			t.Errorf("NewZipf(%v) succeeded, want an error", s)
		}
	}
}

func TestUniformAndHotspot(t *testing.T) {
	const n, draws = 1000, 200_000
	r := rand.New(rand.NewPCG(3, 4))
	u, _ := NewKeyChooser(KeySpec{}, n)
	seen := map[int]bool{}
	for range draws {
		k := u.Next(r)
		if k < 0 || k >= n {
			t.Fatalf("uniform drew %d, out of [0,%d)", k, n)
		}
		seen[k] = true
	}
	if len(seen) != n {
		t.Errorf("uniform covered %d keys, want %d", len(seen), n)
	}

	h, err := NewKeyChooser(KeySpec{Distribution: "hotspot", HotKeys: 0.05, HotTraffic: 0.8}, n)
	if err != nil {
		t.Fatal(err)
	}
	hot := 0
	for range draws {
		if h.Next(r) < 50 {
			hot++
		}
	}
	if got := float64(hot) / draws; math.Abs(got-0.8) > 0.01 {
		t.Errorf("hotspot: %.4f of traffic on the hot 5%%, want 0.8", got)
	}
}

func TestKeyChooserErrors(t *testing.T) {
	for _, spec := range []KeySpec{
		{Distribution: "pareto"},
		{Distribution: "zipf", S: -1},
		{Distribution: "hotspot", HotKeys: 2},
	} {
		if _, err := NewKeyChooser(spec, 10); err == nil {
			t.Errorf("NewKeyChooser(%+v) succeeded, want an error", spec)
		}
	}
	if _, err := NewKeyChooser(KeySpec{}, 0); err == nil {
		t.Error("empty key space accepted")
	}
}
