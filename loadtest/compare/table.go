package compare

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tiercache/productcache/loadtest"
)

// WriteTable prints the comparison, then the docs/design.md §6 ratios, then the
// thresholds, if any were evaluated.
func (r *Result) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "\n%-8s %3s %9s %7s %9s %9s %6s %6s %7s %8s %7s %6s | %-31s\n",
		"config", "rep", "req/s", "xstatic", "p50", "p99", "L1", "L2", "origin", "db_q/req", "stale", "failed",
		"CPU µs/req: replicas redis pg total")
	static := r.row("static")
	if len(r.Rounds) > 1 {
		fmt.Fprintf(w, "(%d rounds, the configurations taking turns: each row is the configuration's round with the median req/s, each ratio below the median of the rounds' ratios)\n", len(r.Rounds))
	}
	for _, row := range r.Rows {
		s := row.Summary
		x := "-"
		if static != nil && static.RPS > 0 {
			x = fmt.Sprintf("%.2f", s.RPS/static.RPS)
		}
		dbr := "-"
		if s.DB.Available {
			dbr = fmt.Sprintf("%.4f", s.DB.PerReq)
		}
		stale := "-"
		if s.Consistency.Enabled {
			stale = strconv.FormatInt(s.Consistency.StaleReads, 10)
		}
		l1, l2, origin := "-", "-", "-"
		if c := s.Cache; c.Classified > 0 {
			l1, l2, origin = pct1(c.L1), pct1(c.L2), pct1(c.Origin)
		}
		fmt.Fprintf(w, "%-8s %3d %9.0f %7s %9s %9s %6s %6s %7s %8s %7s %5.2f%% | %12s %5s %5s %5s\n",
			row.Name, row.Replicas, s.RPS, x, loadtest.FormatMs(s.Latency.Med), loadtest.FormatMs(s.Latency.P99),
			l1, l2, origin, dbr, stale, 100*s.FailRate,
			cpuCell(s.CPU.Replicas), cpuCell(s.CPU.Redis), cpuCell(s.CPU.Postgres), totalCell(s))
	}
	for _, row := range r.Rows {
		if p := row.Summary.CPU.Postgres; !p.Measured && p.Note != "" {
			fmt.Fprintf(w, "\nPostgreSQL CPU not measured: %s\n", p.Note)
			break
		}
	}
	r.writeRedisFamilies(w)
	r.writeRounds(w)
	r.writeWrites(w)
	if notes := r.designNotes(); len(notes) > 0 {
		fmt.Fprintf(w, "\n%s\n", strings.Join(notes, "\n"))
	}
	if len(r.Thresholds) > 0 {
		fmt.Fprintln(w, "\nthresholds:")
		for _, t := range r.Thresholds {
			mark := "ok  "
			if !t.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(w, "  %s %s (actual %.4g)\n", mark, t.Threshold, t.Actual)
		}
	}
	fmt.Fprintln(w)
}

// totalCell is s's CPU per request summed over every component, "-"
// unless every part was measured.
func totalCell(s *loadtest.Summary) string {
	if !s.CPU.Complete {
		return "-"
	}
	return fmt.Sprintf("%.1f", s.CPU.TotalUSPerReq)
}

func cpuCell(p loadtest.CPUPart) string {
	if !p.Measured {
		return "-"
	}
	return fmt.Sprintf("%.1f", p.USPerReq)
}

// designNotes are the project's target ratios the rows allow, each with
// its target and whether it was met.
func (r *Result) designNotes() []string {
	var notes []string
	for _, d := range r.DesignRatios() {
		mark := "met"
		if !d.Met {
			mark = "missed"
		}
		each := ""
		if len(d.Rounds) > 0 {
			var vs []string
			for _, v := range d.Rounds {
				if v == nil {
					vs = append(vs, "-")
				} else {
					vs = append(vs, fmt.Sprintf("%.2f", *v))
				}
			}
			each = ", median of rounds " + strings.Join(vs, " ")
		}
		notes = append(notes, fmt.Sprintf("tiered/%s %s = %.2f (target %s%s): %s",
			d.Base, strings.TrimSuffix(d.Ratio, "_ratio"), d.Value, d.Target, each, mark))
	}
	return notes
}

// writeRounds prints a line per round: each configuration's req/s, p50
// and total CPU per request.
func (r *Result) writeRounds(w io.Writer) {
	for i, rows := range r.Rounds {
		var cells []string
		for _, row := range rows {
			cells = append(cells, fmt.Sprintf("%s %.0f req/s p50 %s CPU %s µs/req", row.Name, row.Summary.RPS, loadtest.FormatMs(row.Summary.Latency.Med), totalCell(row.Summary)))
		}
		if i == 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "round %d: %s\n", i+1, strings.Join(cells, "; "))
	}
}

// writeRedisFamilies writes each configuration's Redis execution time
// per request by command family (INFO commandstats).
func (r *Result) writeRedisFamilies(w io.Writer) {
	head := false
	for _, row := range r.Rows {
		rc := row.Summary.RedisCommands
		if !rc.Measured {
			continue
		}
		if !head {
			fmt.Fprintln(w, "\nRedis µs per request by command family (INFO commandstats; * includes commands scripts and EXEC ran, which scripts_tx counts too):")
			head = true
		}
		fmt.Fprintf(w, "  %-8s %s\n", row.Name, rc.Text())
	}
}

func pct1(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }
