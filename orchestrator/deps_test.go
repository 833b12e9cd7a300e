package orchestrator_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// banned are imports that would let side effects into the pure core
// (DESIGN.md: no os/exec, no net; persistence lives in state, effects in
// steps). The standard library entries are exact (net/url parses, it does
// not dial); the others ban their sub-packages too.
var banned = []struct {
	path string
	subs bool
}{
	{"os/exec", false}, {"net", false}, {"net/http", true}, {"os/signal", false}, {"syscall", false},
	{"go.etcd.io/bbolt", true}, {"upgrader/steps", true}, {"upgrader/state", true},
}

// bannedImports returns the banned packages that one Go source imports.
func bannedImports(filename string, src any) ([]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), filename, src, parser.ImportsOnly)
	if err != nil {
		return nil, err
	}
	var bad []string
	for _, imp := range f.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			return nil, err
		}
		for _, b := range banned {
			if path == b.path || b.subs && strings.HasPrefix(path, b.path+"/") {
				bad = append(bad, path)
				break
			}
		}
	}
	return bad, nil
}

func TestBannedImportsChecker(t *testing.T) {
	// The checker must catch each form of import, or the real test below
	// proves nothing.
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"clean", `package x; import ("context"; "fmt"; "github.com/rs/zerolog"; "github.com/looplab/fsm")`, nil},
		{"os/exec", `package x; import "os/exec"`, []string{"os/exec"}},
		{"renamed net/http", `package x; import web "net/http"`, []string{"net/http"}},
		{"blank net", `package x; import _ "net"`, []string{"net"}},
		{"dot syscall", `package x; import . "syscall"`, []string{"syscall"}},
		{"os/signal in a group", `package x; import ("fmt"; "os/signal")`, []string{"os/signal"}},
		{"bbolt", `package x; import bolt "go.etcd.io/bbolt"`, []string{"go.etcd.io/bbolt"}},
		{"bbolt sub-package", `package x; import "go.etcd.io/bbolt/errors"`, []string{"go.etcd.io/bbolt/errors"}},
		{"steps", `package x; import "upgrader/steps"`, []string{"upgrader/steps"}},
		{"state", `package x; import "upgrader/state"`, []string{"upgrader/state"}},
		{"net/http sub-package", `package x; import "net/http/httptest"`, []string{"net/http/httptest"}},
		{"similar names are fine", `package x; import ("upgrader/statement"; "network"; "net/url"; "os")`, nil},
		{"two at once", `package x; import ("os/exec"; "upgrader/state")`, []string{"os/exec", "upgrader/state"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := bannedImports("synthetic.go", tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("banned imports %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCoreImportsNoSideEffects(t *testing.T) {
	for _, dir := range []string{".", "profile"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue // tests may use the real store and processes
			}
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			bad, err := bannedImports(name, src)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, b := range bad {
				t.Errorf("%s imports %s: the core stays pure, move the side effect to steps/ or state/", name, b)
			}
			checked++
		}
		// Guard against checking nothing (a wrong directory passes silently).
		if checked == 0 {
			t.Errorf("no Go files found in %s", dir)
		}
	}
}
