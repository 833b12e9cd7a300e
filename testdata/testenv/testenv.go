// Package testenv holds what tests of several packages need from the
// machine: a tool make deps installs, and the module's root.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// NeedTool returns the path of a tool the tests need; a missing one fails
// the test (never a skip) saying how to install it.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run `make deps` (as root) to install what the tests need: %v", name, err)
	}
	return p
}

// ModuleRoot walks up from the working directory to the directory holding
// go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}
