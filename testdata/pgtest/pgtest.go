// Package pgtest runs a real PostgreSQL server for tests: a throwaway
// cluster on a loopback port, holding "pom", a small POM-like database.
// Tests of several packages share it: Shared starts one per test binary,
// StopShared (from TestMain) stops it. `make test` installs the server
// (.ci/deps); a machine without it fails, it does not skip.
package pgtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
)

// Cluster is one running server.
type Cluster struct {
	Dir, Bin, Port string
	// Passfile is a pgpass file for user postgres with Password.
	Passfile, Password string
	err                error
}

// Schema is the POM-like database: campaigns, contacts, DNC entries, with
// enough rows that the dump is more than a header.
const Schema = `
CREATE TABLE cmp_campaign (id bigint PRIMARY KEY, name text NOT NULL, state text NOT NULL);
CREATE TABLE pim_contact (id bigint PRIMARY KEY, campaign bigint REFERENCES cmp_campaign(id), phone text, name text, attrs jsonb);
CREATE TABLE pim_dnc (phone text PRIMARY KEY, added timestamptz NOT NULL DEFAULT now());
CREATE INDEX pim_contact_phone ON pim_contact (phone);
INSERT INTO cmp_campaign SELECT g, 'campaign ' || g, 'running' FROM generate_series(1, 20) g;
INSERT INTO pim_contact SELECT g, 1 + g % 20, '+1555' || lpad(g::text, 7, '0'), 'Contact ' || g, jsonb_build_object('tier', g % 3) FROM generate_series(1, 20000) g;
INSERT INTO pim_dnc SELECT '+1666' || lpad(g::text, 7, '0') FROM generate_series(1, 2000) g;
`

// Bin is the newest PostgreSQL server's bin directory.
func Bin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("no PostgreSQL server under /usr/lib/postgresql: run `make deps` (apt-get install postgresql)")
}

// AsPostgres runs a server command; the server refuses to run as root, so
// root runs it as the postgres user.
func AsPostgres(argv ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, argv...)...)
	}
	return exec.Command(argv[0], argv[1:]...)
}

// FreePort is a loopback TCP port nothing listens on now.
func FreePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

func run(cmd *exec.Cmd) error {
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %v\n%s", cmd.Args, err, out)
	}
	return nil
}

// Start makes and starts a cluster whose postgres user has password, with
// database "pom" holding Schema.
func Start(password string) (c Cluster) {
	c.Password = password
	if c.Bin, c.err = Bin(); c.err != nil {
		return c
	}
	if c.Dir, c.err = os.MkdirTemp("", "upgrader-pg-"); c.err != nil {
		return c
	}
	if c.Port, c.err = FreePort(); c.err != nil {
		return c
	}
	pw := filepath.Join(c.Dir, "pw")
	if c.err = os.WriteFile(pw, []byte(password+"\n"), 0o600); c.err != nil {
		return c
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			c.err = fmt.Errorf("no postgres user: %v", err)
			return c
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, p := range []string{c.Dir, pw} {
			if c.err = os.Chown(p, uid, gid); c.err != nil {
				return c
			}
		}
	}
	data := filepath.Join(c.Dir, "data")
	if c.err = run(AsPostgres(filepath.Join(c.Bin, "initdb"), "-D", data, "--username=postgres", "--auth=scram-sha-256",
		"--pwfile="+pw, "--encoding=UTF8", "--no-sync")); c.err != nil {
		return c
	}
	if c.err = run(AsPostgres(filepath.Join(c.Bin, "pg_ctl"), "-D", data, "-l", filepath.Join(c.Dir, "log"), "-w",
		"-o", "-c listen_addresses=127.0.0.1 -p "+c.Port+" -k "+c.Dir+" -c fsync=off", "start")); c.err != nil {
		return c
	}
	// The client side: a pgpass file the tools read through PGPASSFILE.
	c.Passfile = filepath.Join(c.Dir, "pgpass")
	if c.err = os.WriteFile(c.Passfile, []byte("127.0.0.1:"+c.Port+":*:postgres:"+password+"\n"), 0o600); c.err != nil {
		return c
	}
	if c.err = c.PSQL("postgres", "CREATE DATABASE pom"); c.err != nil {
		return c
	}
	c.err = c.PSQL("pom", Schema)
	return c
}

// PSQL runs sql in database db as postgres.
func (c Cluster) PSQL(db, sql string) error {
	_, err := c.Query(db, sql)
	return err
}

// Query runs sql in database db and returns its unaligned tuples.
func (c Cluster) Query(db, sql string) (string, error) {
	cmd := exec.Command("/usr/bin/psql", "--host=127.0.0.1", "--port="+c.Port, "--username=postgres", "--no-password",
		"--dbname="+db, "--set=ON_ERROR_STOP=1", "--quiet", "--no-psqlrc", "--tuples-only", "--no-align", "--command="+sql)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PGPASSFILE=" + c.Passfile}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%v: %v\n%s", cmd.Args, err, out)
	}
	return string(out), nil
}

// Stop stops the server at once and removes its files.
func (c Cluster) Stop() {
	if c.Dir == "" {
		return
	}
	AsPostgres(filepath.Join(c.Bin, "pg_ctl"), "-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "stop").Run()
	os.RemoveAll(c.Dir)
}

var (
	once   sync.Once
	shared Cluster
)

// Shared returns the test binary's cluster, starting it on first use with
// password.
func Shared(tb testing.TB, password string) Cluster {
	tb.Helper()
	once.Do(func() { shared = Start(password) })
	if shared.err != nil {
		tb.Fatalf("PostgreSQL for the database tests: %v", shared.err)
	}
	return shared
}

// StopShared stops the shared cluster, if one was started.
func StopShared() { shared.Stop() }
