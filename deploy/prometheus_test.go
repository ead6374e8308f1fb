package deploy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tiercache/productcache/internal/testenv"
)

// TestPrometheusScrape: a real prometheus process scrapes two productsd
// replicas sharing a database and a Redis namespace; after reads on both
// and updates on one, the dashboard's own hit-ratio and invalidation-lag
// expressions, asked through Prometheus's HTTP API, return values.
func TestPrometheusScrape(t *testing.T) {
	testenv.SkipShort(t)
	prom := lookTool(t, "prometheus", "prometheus")
	_, dbURL := testenv.Schema(t)
	ns := testenv.Namespace(t)
	a, b := startProductsd(t, dbURL, ns), startProductsd(t, dbURL, ns)
	api := startPrometheus(t, prom, a, b)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); traffic(t, a, b, stop) }()
	t.Cleanup(func() { close(stop); <-done })

	exprs := expressions(t)
	testenv.Eventually(t, 60*time.Second, "both targets up", func() bool {
		v, ok := query(api, `sum(up{job="productsd"})`)
		return ok && v == 2
	})
	for _, where := range []string{"panel Hit ratio per tier A", "panel Invalidation lag A"} {
		expr := exprs[where] // $__rate_interval read as 5m
		var v float64
		testenv.Eventually(t, 60*time.Second, where+" through Prometheus", func() bool {
			var ok bool
			v, ok = query(api, expr)
			return ok && v > 0
		})
		t.Logf("%s = %g (%s)", where, v, expr)
		if where == "panel Hit ratio per tier A" && v > 1 {
			t.Errorf("hit ratio %g above 1", v)
		}
	}
}

// startPrometheus runs prometheus scraping targets every 500ms and returns
// the base URL of its HTTP API.
func startPrometheus(t *testing.T, prom string, targets ...string) string {
	t.Helper()
	dir := t.TempDir()
	var hosts []string
	for _, u := range targets {
		hosts = append(hosts, strconv.Quote(strings.TrimPrefix(u, "http://")))
	}
	cfg := fmt.Sprintf("global: {scrape_interval: 500ms, evaluation_interval: 1s}\n"+
		"scrape_configs:\n  - job_name: productsd\n    static_configs:\n      - targets: [%s]\n", strings.Join(hosts, ", "))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	cmd := exec.Command(prom, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)
	log, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	return "http://" + addr
}

// traffic creates products through a, reads them through both replicas
// and updates them through a (invalidations b applies) until stop closes.
func traffic(t *testing.T, a, b string, stop chan struct{}) {
	c := &http.Client{Timeout: 5 * time.Second}
	var ids []string
	for i := 0; i < 5; i++ {
		resp, err := c.Post(a+"/products", "application/json", strings.NewReader(`{"name":"p","price_cents":1}`))
		if err != nil {
			t.Error(err)
			return
		}
		var p struct{ ID string }
		_ = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		ids = append(ids, p.ID)
	}
	do := func(method, u, body string) {
		req, _ := http.NewRequest(method, u, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if resp, err := c.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		id := ids[n%len(ids)]
		do(http.MethodGet, a+"/products/"+id, "")
		do(http.MethodGet, b+"/products/"+id, "")
		if n%5 == 0 {
			do(http.MethodPut, a+"/products/"+id, fmt.Sprintf(`{"name":"p%d","price_cents":%d}`, n, n+1))
		}
	}
}

// query asks Prometheus's HTTP API for expr's value now, and reports
// whether the answer was a one-sample vector.
func query(api, expr string) (float64, bool) {
	resp, err := http.Get(api + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Data   struct {
			Result []struct{ Value [2]any }
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.Status != "success" || len(r.Data.Result) != 1 {
		return 0, false
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}
