// Command productsd serves the products API (docs/design.md §4) on PostgreSQL,
// read through a two-tier cache.
//
// Usage:
//
//	productsd [serve] [flags]     run the server (the default)
//	productsd migrate [flags]     apply the schema migrations and exit
//	productsd seed -n N [flags]   load N demo products with COPY and exit
//	productsd healthcheck [-path P]  GET P (default /readyz) on ADDR; exit 0 on 200
//	productsd env                 print every setting with its default
//	productsd -version            print the module version and VCS revision
//
// Every setting is an environment variable (docs/design.md §5) and a flag; a flag
// wins over the variable. Run productsd -h for the list.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "productsd: %v\n", err)
		os.Exit(1)
	}
}

// run is the whole program: args are the command line (args[0] is the
// program name), getenv reads the environment. It returns when ctx ends (for
// serve) or the command is done.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		args = args[1:]
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		switch strings.TrimLeft(a, "-") {
		case "h", "help":
			usage(stdout)
			return nil
		case "version":
			printVersion(stdout)
			return nil
		}
	}
	switch cmd {
	case "serve":
		cfg, err := parseConfig(cmd, args, getenv, stderr, nil)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, stdout, stderr)
	case "migrate":
		cfg, err := parseConfig(cmd, args, getenv, stderr, nil)
		if err != nil {
			return err
		}
		return migrate(ctx, cfg, stdout, stderr)
	case "seed":
		var n int
		cfg, err := parseConfig(cmd, args, getenv, stderr, func(fs *flagSet) {
			fs.IntVar(&n, "n", 100000, "number of products to insert")
		})
		if err != nil {
			return err
		}
		if n < 1 {
			return fmt.Errorf("seed: -n %d: want at least 1", n)
		}
		return seed(ctx, cfg, n, stdout, stderr)
	case "healthcheck":
		path := "/readyz"
		cfg, err := parseConfig(cmd, args, getenv, stderr, func(fs *flagSet) {
			fs.StringVar(&path, "path", path, "path to GET")
		})
		if err != nil {
			return err
		}
		return healthcheck(ctx, cfg, path)
	case "env":
		printSettings(stdout)
		return nil
	case "help":
		usage(stdout)
		return nil
	case "version":
		printVersion(stdout)
		return nil
	}
	return fmt.Errorf("unknown command %q: want serve, migrate, seed, healthcheck, env or version (productsd -h lists them)", cmd)
}
