// Command teleportfake runs the in-process Teleport Auth Service double of
// package tests/teleportfake as a standalone daemon for demos and benchmarks.
//
// It writes an identity file for the real Teleport API client, optionally
// seeds generated audit events, optionally keeps appending events at a fixed
// rate (with a recorded session every ~10 s when -sessions is set), prints
//
//	ready addr=<host:port> identity=<path> cluster=<name> events=<n>
//
// on stdout and serves until SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
)

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("teleportfake: ")
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	var (
		listen        = flag.String("listen", "127.0.0.1:3025", "address to listen on")
		identity      = flag.String("identity", "", "write a client identity file to this path (required)")
		cluster       = flag.String("cluster", teleportfake.DefaultClusterName, "cluster name")
		seed          = flag.Int("seed", 0, "number of generated events to append before serving")
		seedStart     = flag.String("seed-start", "", "RFC3339 time of the first seeded event (default now - seed*seed-step)")
		seedStep      = flag.Duration("seed-step", 10*time.Millisecond, "time between seeded events")
		rate          = flag.Float64("rate", 0, "after seeding, append this many events per second with time=now (0 = off)")
		sessions      = flag.Bool("sessions", false, "with -rate, append a recorded session and its session.upload event every ~10s")
		bulk          = flag.Bool("bulk", false, "serve the bulk export API (GetEventExportChunks / ExportUnstructuredEvents)")
		structuredSes = flag.Bool("structured-sessions-only", false, "answer Unimplemented to StreamUnstructuredSessionEvents, like Teleport 13")
		maxPageBytes  = flag.Int("max-page-bytes", teleportfake.DefaultMaxPageBytes, "cap on the bytes of one page of search results")
		ttl           = flag.Duration("ttl", 24*time.Hour, "validity of the identity written to -identity")
		genSeed       = flag.Int64("generator-seed", 1, "seed of the event generator")
	)
	flag.Parse()
	if *identity == "" {
		flag.Usage()
		return fmt.Errorf("-identity is required")
	}
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", flag.Args())
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	srv, err := teleportfake.Start(teleportfake.Config{
		ClusterName:            *cluster,
		ListenAddr:             *listen,
		MaxPageBytes:           *maxPageBytes,
		StructuredSessionsOnly: *structuredSes,
		BulkExport:             *bulk,
	})
	if err != nil {
		return err
	}
	defer srv.Close()

	if err := srv.WriteIdentityFile(*identity, teleportfake.IdentityOptions{NotAfter: time.Now().Add(*ttl)}); err != nil {
		return fmt.Errorf("writing identity: %w", err)
	}

	gen := teleportfake.NewGenerator(*genSeed)
	gen.ClusterName = *cluster
	last := time.Now()
	if *seed > 0 {
		start := time.Now().Add(-time.Duration(*seed) * *seedStep)
		if *seedStart != "" {
			if start, err = time.Parse(time.RFC3339Nano, *seedStart); err != nil {
				return fmt.Errorf("-seed-start: %w", err)
			}
		}
		const batch = 10000
		for done := 0; done < *seed; done += batch {
			n := min(batch, *seed-done)
			srv.Append(gen.Events(n, start.Add(time.Duration(done)**seedStep), *seedStep)...)
		}
		last = start.Add(time.Duration(*seed-1) * *seedStep)
	}

	fmt.Fprintf(os.Stdout, "ready addr=%s identity=%s cluster=%s events=%d\n", srv.Addr(), *identity, srv.ClusterName(), srv.Len())
	_ = os.Stdout.Sync()

	if *rate > 0 {
		go produce(ctx, srv, gen, *rate, *sessions, last)
	}
	<-ctx.Done()
	return nil
}

// produce appends rate events per second (spread between the previous event
// and now, so times never go backwards) and, with sessions, a recording plus
// its session.upload event every ~10 s.
func produce(ctx context.Context, srv *teleportfake.Server, gen *teleportfake.Generator, rate float64, sessions bool, last time.Time) {
	const tick = 100 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	began := time.Now()
	appended := 0
	nextSession := began.Add(10 * time.Second)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if now.Before(last) {
				now = last
			}
			n := int(rate*now.Sub(began).Seconds()) - appended
			if n > 0 {
				step := now.Sub(last) / time.Duration(n)
				evs := gen.Events(n, last.Add(step), step)
				srv.Append(evs...)
				appended += n
				last = evs[len(evs)-1].GetTime()
			}
			if sessions && !now.Before(nextSession) {
				sid := gen.UUID()
				rec, upload := gen.Session(sid, now.Add(-9*time.Second), 30)
				srv.AddSession(sid, rec)
				upload.SetTime(now.UTC())
				srv.Append(upload)
				last = now
				nextSession = now.Add(10 * time.Second)
			}
		}
	}
}
