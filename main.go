// Command tether runs Tether: a self-hosted web app that connects CI
// projects to Bitbucket Cloud and keeps their deploy keys and webhooks
// healthy. With no Bitbucket OAuth consumer configured it starts in demo
// mode against a built-in Bitbucket emulator.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"tether/internal/app"
	"tether/internal/config"
	"tether/views"
)

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tether:", err)
		os.Exit(1)
	}
}

// run starts Tether and serves until ctx is done.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := a.Server()
	fmt.Fprintf(stdout, "Tether is listening on http://%s (public URL %s)\n", ln.Addr(), cfg.PublicURL)
	if cfg.Demo() {
		fmt.Fprintf(stdout, "Demo mode: log in with Bitbucket as alice, bob or carol (password: demo).\n")
		if a.DemoLeftovers > 0 {
			fmt.Fprintf(stdout, "Note: %s (%s)\n", views.DemoLeftoversNote(a.DemoLeftovers), cfg.DataDir)
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	go a.Background(ctx)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Stop taking requests; let those in flight finish within the grace
	// period, then cut whatever is left (a slow client, a stalled
	// upload). Either way Tether stopped as asked: exit 0. The deferred
	// Close then commits deliveries still queued and closes the database.
	shutdown, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		log.Warn("shutdown: requests still running after the grace period were cut", "grace", ShutdownGrace)
		srv.Close()
	}
	log.Info("shutdown: stopped")
	return nil
}

// GCPercent is Go's GOGC for Tether when the environment sets none: the
// heap may grow to five times what is live before the garbage collector
// runs, instead of twice. Tether's live heap is small (tens of MB), so at
// the default the collector ran dozens of times a second under polling
// and deliveries, taking CPU from them and adding pauses to their slowest
// answers (docs/BENCHMARKS.md). GOGC and GOMEMLIMIT, when set, are
// honoured as Go documents them.
const GCPercent = 400

// ShutdownGrace is how long requests in flight at SIGTERM get to finish:
// longer than a webhook delivery waits for its commit (8 s at most),
// shorter than the 10 s Docker and most supervisors wait before SIGKILL.
const ShutdownGrace = 9 * time.Second
