// Command demo runs the plugin against the Teleport test double with a steady
// stream of realistic audit events and prints the records: in a real
// fluent-bit when one is found (FLUENT_BIT or PATH), else under the test host
// that drives the .so through Fluent Bit's Go-proxy ABI.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/flbhost"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/teleportfake"
	"github.com/fluent-bit-teleport/fluent-bit-teleport/tests/testenv"
)

func main() {
	backlog := flag.Int("backlog", 20, "events already in the audit log at start")
	rate := flag.Int("rate", 2, "new audit events per second")
	sessions := flag.Duration("sessions", 10*time.Second, "record a session this often (0: never)")
	duration := flag.Duration("duration", 0, "stop after this long (0: run until Ctrl-C)")
	flag.Parse()
	if err := run(*backlog, *rate, *sessions, *duration); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(backlog, rate int, every, duration time.Duration) error {
	so, err := testenv.BuildPlugin()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "teleport-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	srv, err := teleportfake.Start(teleportfake.Config{ClusterName: "demo.teleport.example.com"})
	if err != nil {
		return err
	}
	defer srv.Close()
	identity := filepath.Join(dir, "identity")
	if err := srv.WriteIdentityFile(identity, teleportfake.IdentityOptions{NotAfter: time.Now().Add(24 * time.Hour)}); err != nil {
		return err
	}
	gen := teleportfake.NewGenerator(time.Now().UnixNano())
	gen.ClusterName = srv.ClusterName()
	start := time.Now().Add(-time.Hour).Truncate(time.Second)
	srv.Append(gen.Events(backlog, start.Add(time.Second), time.Hour/time.Duration(backlog+1))...)
	stopStream := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second / time.Duration(max(rate, 1)))
		defer t.Stop()
		var record <-chan time.Time
		if every > 0 {
			s := time.NewTicker(every)
			defer s.Stop()
			record = s.C
		}
		n := 0
		for {
			select {
			case <-stopStream:
				return
			case <-t.C:
				srv.Append(gen.Events(1, time.Now(), 0)...)
			case <-record:
				// A session that ended just now: its recording, then the
				// session.upload event that announces it.
				n++
				sid := fmt.Sprintf("demo-session-%d", n)
				rec, upload := gen.Session(sid, time.Now().Add(-5*time.Second), 12)
				srv.AddSession(sid, rec)
				srv.Append(upload)
			}
		}
	}()
	defer close(stopStream)

	props := []string{
		"addr=" + srv.Addr(), "identity_file=" + identity, "db=" + filepath.Join(dir, "db"),
		"start_time=" + start.Format(time.RFC3339), "sessions=on", "status_interval=30s",
	}
	fmt.Fprintf(os.Stderr, "demo: Teleport test double at %s (cluster %s), %d events in the log, %d new per second, a recorded session every %s\n",
		srv.Addr(), srv.ClusterName(), backlog, rate, every)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	if duration > 0 {
		go func() { time.Sleep(duration); stop <- syscall.SIGTERM }()
	}
	if fb := findFluentBit(); fb != "" {
		return runFluentBit(fb, so, props, stop)
	}
	fmt.Fprintln(os.Stderr, `demo: no fluent-bit found (set FLUENT_BIT=/path/to/fluent-bit or put it on PATH).
demo: get one from https://docs.fluentbit.io/manual/installation (packages, the fluent/fluent-bit image)
demo: or build it from source; meanwhile the plugin runs under the test host (tests/host), which
demo: calls it exactly as Fluent Bit's Go proxy does, once a second.`)
	return runHost(so, props, filepath.Join(dir, "records"), stop)
}

func findFluentBit() string {
	if p := os.Getenv("FLUENT_BIT"); p != "" {
		return p
	}
	p, _ := exec.LookPath("fluent-bit")
	return p
}

func runFluentBit(bin, so string, props []string, stop <-chan os.Signal) error {
	args := []string{"-e", so, "-i", "teleport", "-t", "teleport.audit"}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	// The README's recipe: recordings get their own tag, teleport.session.<sid>.
	args = append(args, "-F", "rewrite_tag", "-m", "teleport.audit", "-p", "rule=$teleport_stream ^session$ teleport.session.$sid false")
	args = append(args, "-o", "stdout", "-m", "*", "-f", "1") // the default format shows each record's tag
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-stop:
		_ = cmd.Process.Signal(syscall.SIGTERM)
		return <-done
	}
}

// runHost drives the plugin like Fluent Bit: collect once a second, and
// prints each record as Fluent Bit's stdout output does with json_lines.
func runHost(so string, props []string, records string, stop <-chan os.Signal) error {
	host, err := flbhost.CompileC(flbhost.HostSource(), "host", append(append([]string{}, flbhost.HostCFlags...), "-ldl", "-lpthread"))
	if err != nil {
		return fmt.Errorf("building the test host: %w", err)
	}
	cmd := exec.Command(host, so, "-records", records)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	answers := bufio.NewScanner(out)
	send := func(line string) error {
		if _, err := io.WriteString(in, line+"\n"); err != nil {
			return err
		}
		for answers.Scan() {
			if a := answers.Text(); len(a) > 3 && (a[:3] == "ok " || a[:4] == "err ") {
				if a[:4] == "err " {
					return fmt.Errorf("host: %s", a)
				}
				return nil
			}
		}
		return io.EOF
	}
	answers.Scan() // the registration line
	line := "init"
	for _, p := range props {
		line += fmt.Sprintf(" %q", p)
	}
	if err := send(line); err != nil {
		return err
	}
	printed := 0
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			_ = send("quit")
			return cmd.Wait()
		case <-tick.C:
			if err := send("collect 0"); err != nil {
				return err
			}
			recs, err := flbhost.ReadRecords(records)
			if err != nil {
				return err
			}
			for _, r := range recs[printed:] {
				tag := "teleport.audit"
				if r.Body["teleport_stream"] == "session" {
					tag = fmt.Sprintf("teleport.session.%v", r.Body["sid"])
				}
				m := map[string]any{"date": float64(r.Time.UnixNano()) / 1e9, "tag": tag}
				for k, v := range r.Body {
					m[k] = v
				}
				b, _ := json.Marshal(m)
				fmt.Println(string(b))
			}
			printed = len(recs)
		}
	}
}
