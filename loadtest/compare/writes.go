package compare

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/tiercache/productcache/loadtest"
)

// writeTypes are the request types that change a product.
var writeTypes = []string{"update", "create", "delete"}

// WriteFigures are a run's writes: their rate and the p99 of the most
// frequent write type, updates.
type WriteFigures struct {
	PerS      float64
	Requests  int64
	Failed    int64
	UpdateP99 float64 // ms
}

// Writes returns s's write figures; ok is false when it sent no writes.
func Writes(s *loadtest.Summary) (w WriteFigures, ok bool) {
	for _, typ := range writeTypes {
		t, found := s.Types[typ]
		if !found {
			continue
		}
		w.Requests += t.Requests
		w.Failed += t.Failed
	}
	if w.Requests == 0 {
		return w, false
	}
	if s.DurationS > 0 {
		w.PerS = float64(w.Requests) / s.DurationS
	}
	w.UpdateP99 = s.Types["update"].Latency.P99
	return w, true
}

// writeWrites prints, when the scenario writes, each configuration's write
// rate and update p99, then every round's, and the medians of the rounds.
func (r *Result) writeWrites(w io.Writer) {
	if len(r.Rows) == 0 {
		return
	}
	if _, ok := Writes(r.Rows[0].Summary); !ok {
		return
	}
	fmt.Fprintf(w, "\nwrites (update, create, delete):\n")
	for _, row := range r.Rows {
		f, _ := Writes(row.Summary)
		fmt.Fprintf(w, "%s: %.0f writes/s, update p99 %s, %d of %d failed%s\n", row.Name, f.PerS,
			loadtest.FormatMs(f.UpdateP99), f.Failed, f.Requests, r.writeMedians(row.Name))
	}
	ratios := map[string][2][]float64{}
	for i, rows := range r.Rounds {
		cells := make([]string, 0, len(rows))
		first, _ := Writes(rows[0].Summary)
		for _, row := range rows {
			f, _ := Writes(row.Summary)
			cells = append(cells, fmt.Sprintf("%s %.0f writes/s update p99 %s", row.Name, f.PerS, loadtest.FormatMs(f.UpdateP99)))
			if row.Name != rows[0].Name && first.PerS > 0 && first.UpdateP99 > 0 {
				q := ratios[row.Name]
				ratios[row.Name] = [2][]float64{append(q[0], f.PerS/first.PerS), append(q[1], f.UpdateP99/first.UpdateP99)}
			}
		}
		fmt.Fprintf(w, "writes round %d: %s\n", i+1, strings.Join(cells, "; "))
	}
	for _, row := range r.Rows[1:] {
		if q := ratios[row.Name]; len(q[0]) > 0 {
			fmt.Fprintf(w, "%s / %s, median of the rounds' ratios: %.2fx writes/s, %.2fx update p99 (rounds: %s)\n",
				row.Name, r.Rows[0].Name, median(q[0]), median(q[1]), ratioList(q[0], q[1]))
		}
	}
}

// ratioList formats each round's write-rate and p99 ratios.
func ratioList(rates, p99s []float64) string {
	out := make([]string, len(rates))
	for i := range rates {
		out[i] = fmt.Sprintf("%.2f/%.2f", rates[i], p99s[i])
	}
	return strings.Join(out, " ")
}

// writeMedians describes the median write rate and update p99 of a
// configuration over the rounds, each taken on its own; "" for one round.
func (r *Result) writeMedians(name string) string {
	var rates, p99s []float64
	for _, rows := range r.Rounds {
		for _, row := range rows {
			if row.Name == name {
				f, _ := Writes(row.Summary)
				rates, p99s = append(rates, f.PerS), append(p99s, f.UpdateP99)
			}
		}
	}
	if len(rates) < 2 {
		return ""
	}
	return fmt.Sprintf(" (medians of %d rounds: %.0f writes/s, update p99 %s)", len(rates), median(rates), loadtest.FormatMs(median(p99s)))
}

// median is the middle value (the lower middle one of an even number).
func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}
