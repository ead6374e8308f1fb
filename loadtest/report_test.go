package loadtest

import (
	"fmt"
	"strings"
	"testing"
)

// TestLogChart: the latency chart's axis has one line per power of ten
// from below the smallest value to above the largest, a zero sits on the
// bottom line, and the chart has no fixed width (the page scales it).
func TestLogChart(t *testing.T) {
	t.Parallel()
	svg := string(svgLogChart("Latency", []float64{1, 2, 3},
		[]chartLine{{"p50", "#000", []float64{0.2, 0, 0.4}}, {"p99", "#111", []float64{3, 40, 8}}}))
	for _, label := range []string{">0.1<", ">1<", ">10<", ">100<"} {
		if !strings.Contains(svg, label) {
			t.Errorf("axis lacks %s:\n%s", label, svg)
		}
	}
	if strings.Contains(svg, ">1000<") || strings.Contains(svg, ">0.01<") {
		t.Errorf("axis wider than the data:\n%s", svg)
	}
	if bottom := fmt.Sprintf(",%.1f ", chartH-padB); !strings.Contains(svg, bottom) {
		t.Errorf("a zero is not on the bottom line (%q):\n%s", bottom, svg)
	}
	if strings.Contains(svg, `width="`+fmt.Sprint(chartW)) {
		t.Errorf("chart has a fixed width:\n%s", svg)
	}
}
