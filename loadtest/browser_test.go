package loadtest

import (
	"bytes"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// probeScript, added before </body> of a copy of the report, records in
// the DOM what the browser laid out: each chart's polylines' bounding
// boxes and axis labels, and any script error on the page.
const probeScript = `<script>
window.addEventListener("error", e => document.body.setAttribute("data-errors", (document.body.getAttribute("data-errors")||"") + e.message + ";"));
window.addEventListener("load", () => document.querySelectorAll("svg").forEach(s => {
  let lines = 0; s.querySelectorAll("polyline").forEach(p => { const b = p.getBBox(); if (b.width > 0) lines++; });
  s.setAttribute("data-drawn", lines + " " + s.querySelectorAll("text.yl").length + " " + s.querySelectorAll("text.xl").length);
}));
</script></body>`

var drawnRE = regexp.MustCompile(`aria-label="([^"]*)"[^>]*data-drawn="(\d+) (\d+) (\d+)"|data-drawn="(\d+) (\d+) (\d+)"[^>]*aria-label="([^"]*)"`)

// TestReportInBrowser renders the HTML report of a short run in headless
// Chromium: every chart has a drawn line (a polyline of non-zero width
// in the browser's layout) and axis labels, the page raises no script
// error, and its screenshot is not blank (it holds the throughput
// line's colour).
func TestReportInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not on PATH: install Debian package chromium (.ci/run does)")
	}
	_, urls := newFakeAPI(t, 2, 10, true)
	sc := &Scenario{Targets: urls, VUs: 2, Duration: Duration(1500 * time.Millisecond), Setup: Setup{Products: 10}, Probe: ProbeSpec{Enabled: true}}
	sum, err := Run(t.Context(), sc, RunOptions{Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer
	if err := WriteHTML(&page, sum); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	report := filepath.Join(dir, "report.html")
	probed := filepath.Join(dir, "probed.html")
	html := page.String()
	if err := os.WriteFile(report, []byte(html), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(probed, []byte(strings.Replace(html, "</body>", probeScript, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1100,2600"}
	dom, err := exec.Command(chromium, append(flags, "--dump-dom", "file://"+probed)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	checkDrawn(t, string(dom), strings.Count(html, "<svg"))
	shot := filepath.Join(dir, "report.png")
	if out, err := exec.Command(chromium, append(flags, "--screenshot="+shot, "file://"+report)...).CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	checkScreenshot(t, shot)
	if dst := os.Getenv("REPORT_PNG"); dst != "" {
		b, _ := os.ReadFile(shot)
		_ = os.WriteFile(dst, b, 0o644)
	}
}

func checkDrawn(t *testing.T, dom string, charts int) {
	t.Helper()
	if strings.Contains(dom, "data-errors=") {
		t.Errorf("script errors on the page: %s", regexp.MustCompile(`data-errors="[^"]*"`).FindString(dom))
	}
	ms := drawnRE.FindAllStringSubmatch(dom, -1)
	if charts < 4 || len(ms) != charts {
		t.Fatalf("%d of %d charts measured by the browser", len(ms), charts)
	}
	for _, m := range ms {
		title, lines, yl, xl := m[1]+m[8], m[2]+m[5], m[3]+m[6], m[4]+m[7]
		if lines == "0" || yl == "0" || xl == "0" {
			t.Errorf("chart %q: %s drawn lines, %s y labels, %s x labels", title, lines, yl, xl)
		}
	}
}

// checkScreenshot fails when the screenshot has no pixel of the
// throughput line's colour (#2563eb), i.e. the charts were not painted.
func checkScreenshot(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	blue, b := 0, img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 < 0x40 && g>>8 > 0x50 && g>>8 < 0x70 && bl>>8 > 0xd0 {
				blue++
			}
		}
	}
	if blue < 100 {
		t.Errorf("screenshot %dx%d has %d pixels of the chart blue: not painted", b.Dx(), b.Dy(), blue)
	}
	t.Logf("screenshot %dx%d, %d chart-blue pixels", b.Dx(), b.Dy(), blue)
}
