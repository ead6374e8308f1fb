package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"golang.org/x/sync/errgroup"
)

// EnsureProducts returns the key space of a run: the first want ids listed
// by base, after making the missing ones (with seed when it is set, else
// with POST requests).
func EnsureProducts(ctx context.Context, client *http.Client, base string, want int, seed func(ctx context.Context, n int) error, logf func(string, ...any)) ([]string, error) {
	ids, err := ListIDs(ctx, client, base, want, 200)
	if err != nil {
		return nil, err
	}
	if missing := want - len(ids); missing > 0 {
		logf("setup: %d products exist, making %d more", len(ids), missing)
		if seed != nil {
			if err := seed(ctx, missing); err != nil {
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
