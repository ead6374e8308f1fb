package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"text/tabwriter"
	"time"
)

// usage prints the commands and every setting: productsd -h.
func usage(w io.Writer) {
	fmt.Fprint(w, `productsd serves the products API on PostgreSQL through a two-tier cache.

Usage:
  productsd [serve] [flags]           run the server (the default)
  productsd migrate [flags]           apply the schema migrations and exit
  productsd seed -n N [flags]         load N demo products with COPY and exit
  productsd healthcheck [-path P]     GET P (default /readyz) on ADDR's port; exit 0 on 200
  productsd env                       print every setting as NAME=default
  productsd version (or -version)     print the module version and VCS revision
  productsd -h                        this text

Settings (environment variable, flag, default); a flag wins over the variable:
`)
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	for _, s := range settings() {
		def := s.def
		if def == "" {
			def = "(none)"
		}
		fmt.Fprintf(tw, "  %s\t-%s\t%s\t%s\n", s.env, s.flag, def, s.usage)
	}
	_ = tw.Flush()
}

// printSettings prints every setting as NAME=default, one a line: the one
// list deployment checks compare manifests against.
func printSettings(w io.Writer) {
	for _, s := range settings() {
		fmt.Fprintf(w, "%s=%s\n", s.env, s.def)
	}
}

// printVersion prints the module version, VCS revision and time, and the
// Go version, from the build info.
func printVersion(w io.Writer) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(w, "productsd (no build info)")
		return
	}
	rev, when, dirty := "unknown", "", ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = " (modified)"
			}
		}
	}
	fmt.Fprintf(w, "productsd %s %s revision %s%s%s %s\n", bi.Main.Path, bi.Main.Version, rev, dirty, when, bi.GoVersion)
}

// healthcheck GETs path on this replica's own port (ADDR) and fails unless
// it answers 200: the container health check of an image without curl.
func healthcheck(ctx context.Context, cfg config, path string) error {
	_, port, err := net.SplitHostPort(cfg.addr)
	if err != nil {
		return fmt.Errorf("ADDR: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort("127.0.0.1", port) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: GET %s: %s %s", url, resp.Status, body)
	}
	return nil
}
