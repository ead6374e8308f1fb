package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"sync"

	"golang.org/x/sync/errgroup"
)

// EnsureProducts returns the key space of the run: sc.Setup.IDs when set,
// otherwise the first sc.Setup.Products ids listed by the first target,
// after making the missing ones (with `productsd seed` when
// sc.Setup.SeedBinary is set, else with POST requests).
func EnsureProducts(ctx context.Context, client *http.Client, sc *Scenario, logf func(string, ...any)) ([]string, error) {
	if len(sc.Setup.IDs) > 0 {
		return sc.Setup.IDs, nil
	}
	want := sc.Setup.Products
	base := sc.Targets[0]
	ids, err := ListIDs(ctx, client, base, want, 200)
	if err != nil {
		return nil, err
	}
	if missing := want - len(ids); missing > 0 {
		logf("setup: %d products exist, making %d more", len(ids), missing)
		if sc.Setup.SeedBinary != "" {
			if err := Seed(ctx, sc.Setup.SeedBinary, sc.Setup.SeedDatabaseURL, missing, nil, sc.Setup.SeedEnv...); err != nil {
				return nil, err
			}
			// The seed bypasses the API, so list pages cached before it
			// are out of date until they expire; a different page size
			// asks for pages no one has cached.
			if ids, err = ListIDs(ctx, client, base, want, 199); err != nil {
				return nil, err
			}
		} else {
			made, err := createProducts(ctx, client, base, missing)
			if err != nil {
				return nil, err
			}
			ids = append(ids, made...)
		}
	}
	if len(ids) < want {
		return nil, fmt.Errorf("loadtest: setup: wanted %d products, found %d", want, len(ids))
	}
	logf("setup: %d products", want)
	return ids[:want], nil
}

// ListIDs pages through GET /products?limit=&after= until it has n ids or
// the last page.
func ListIDs(ctx context.Context, client *http.Client, base string, n, limit int) ([]string, error) {
	var ids []string
	after := ""
	for len(ids) < n {
		u := base + "/products?limit=" + strconv.Itoa(limit)
		if after != "" {
			u += "&after=" + url.QueryEscape(after)
		}
		var page struct {
			Items     []product `json:"items"`
			NextAfter *string   `json:"next_after"`
		}
		if err := getJSON(ctx, client, u, &page); err != nil {
			return nil, err
		}
		for _, p := range page.Items {
			ids = append(ids, p.ID)
		}
		if page.NextAfter == nil || *page.NextAfter == "" || len(page.Items) == 0 {
			break
		}
		after = *page.NextAfter
	}
	return ids, nil
}

func getJSON(ctx context.Context, client *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("loadtest: GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("loadtest: GET %s: %s: %.200s", u, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("loadtest: GET %s: %w", u, err)
	}
	return nil
}

// createProducts makes n products with POST, 8 at a time.
func createProducts(ctx context.Context, client *http.Client, base string, n int) ([]string, error) {
	var mu sync.Mutex
	ids := make([]string, 0, n)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			body := fmt.Appendf(nil, `{"name":"loadtest product %d","description":"made by loadtest setup","price_cents":%d}`, i, 100+i)
			id, err := postProduct(ctx, client, base, body)
			if err == nil {
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
			return err
		})
	}
	return ids, g.Wait()
}

func postProduct(ctx context.Context, client *http.Client, base string, body []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/products", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("loadtest: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("loadtest: setup: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var p product
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &p) != nil || p.ID == "" {
		return "", fmt.Errorf("loadtest: setup: POST /products: %s: %.200s", resp.Status, b)
	}
	return p.ID, nil
}

// Seed runs `bin seed -n n` against databaseURL (passed as DATABASE_URL),
// with env (KEY=value) added to its environment: CACHE_NAMESPACE and
// REDIS_URL say whose cached list pages the seed invalidates. Its output
// goes to out (nil discards it, except in the error).
func Seed(ctx context.Context, bin, databaseURL string, n int, out io.Writer, env ...string) error {
	return runTool(ctx, bin, databaseURL, out, env, "seed", "-n", strconv.Itoa(n))
}

// Migrate runs `bin migrate` against databaseURL.
func Migrate(ctx context.Context, bin, databaseURL string, out io.Writer) error {
	return runTool(ctx, bin, databaseURL, out, nil, "migrate")
}

func runTool(ctx context.Context, bin, databaseURL string, out io.Writer, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = os.Environ()
	if databaseURL != "" {
		cmd.Env = append(cmd.Env, "DATABASE_URL="+databaseURL)
	}
	cmd.Env = append(cmd.Env, env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if out != nil {
		cmd.Stdout, cmd.Stderr = io.MultiWriter(&buf, out), io.MultiWriter(&buf, out)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("loadtest: %s %v: %w: %.2000s", bin, args, err, buf.String())
	}
	return nil
}
