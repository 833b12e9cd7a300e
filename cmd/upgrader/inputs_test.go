package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Files given on the command line are untrusted input: a device that never
// ends (/dev/zero), a FIFO nobody writes, a directory or a file too large
// is refused at once, with a message that says what it is and what to give
// instead, exit 2, and memory bounded (the process runs with 256 MiB of
// data segment: reading /dev/zero to the end would exhaust it).
func TestHostileInputFiles(t *testing.T) {
	s := newSim(t)
	fifo := filepath.Join(s.dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(s.dir, "big.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("# padding\n"), 200<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(s.root, "media", "POM.03.01.01.01.00.003-r35434-x86_64.iso")
	var tried, refused int
	t.Cleanup(func() { t.Logf("hostile input (files): %d tried, %d refused with a message", tried, refused) })
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"profile /dev/zero", []string{"plan", "--profile", "/dev/zero"}, "/dev/zero is a character device; give a regular file"},
		{"profile FIFO", []string{"plan", "--profile", fifo}, fifo + " is a named pipe; give a regular file"},
		{"profile directory", []string{"plan", "--profile", s.dir}, "is a directory; give a regular file"},
		{"profile over 1 MiB", []string{"plan", "--profile", big}, "larger than 1048576 bytes"},
		{"answers /dev/zero", []string{"run", "--yes", "--answers", "/dev/zero"}, "/dev/zero is a character device; give a regular file"},
		{"answers FIFO", []string{"run", "--yes", "--answers", fifo}, "is a named pipe; give a regular file"},
		{"import /dev/zero", []string{"import", "/dev/zero"}, "/dev/zero is a character device; give a regular file"},
		{"import FIFO", []string{"import", fifo}, "is a named pipe; give a regular file"},
		{"verify-media /dev/zero", []string{"verify-media", "/dev/zero"}, "/dev/zero is a character device; give a regular file"},
		{"verify-media FIFO", []string{"verify-media", fifo}, "is a named pipe; give a regular file"},
		{"verify-media --cert /dev/zero", []string{"verify-media", iso, "--cert", "/dev/zero"}, "--cert: not a regular file: /dev/zero is a character device"},
		{"verify-media --sig FIFO", []string{"verify-media", iso, "--sig", fifo}, "--sig: not a regular file: " + fifo + " is a named pipe"},
		{"verify-media --trust-anchor /dev/zero", []string{"verify-media", iso, "--trust-anchor", "/dev/zero"}, "--trust-anchor: not a regular file: /dev/zero is a character device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tried++
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			args := append([]string{"--data=" + "268435456", binary, "--profile", s.profile, "--state-dir", s.state}, tc.args...)
			c := exec.CommandContext(ctx, "prlimit", args...)
			c.Env = append(os.Environ(), "UPGRADER_PROFILE=", "UPGRADER_STATE_DIR=")
			var out, errb bytes.Buffer
			c.Stdout, c.Stderr = &out, &errb
			start := time.Now()
			err := c.Run()
			took := time.Since(start)
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if ctx.Err() != nil {
				t.Fatalf("still running after %s: killed", took.Round(time.Millisecond))
			}
			stderr := errb.String()
			if code != exitUsage || !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "fatal error") {
				t.Fatalf("exit %d after %s, want %d with %q\nstderr: %.600s", code, took.Round(time.Millisecond), exitUsage, tc.want, stderr)
			}
			if took > 5*time.Second {
				t.Errorf("took %s", took)
			}
			t.Logf("refused in %s: %s", took.Round(time.Millisecond), strings.TrimSpace(stderr))
			refused++
		})
	}
}
