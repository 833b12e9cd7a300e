// Command mksim sets up a simulated host in a directory:
// go run ./testdata/simhost/mksim [HOST] DIR   (HOST defaults to pom)
//
// mksim -serve-mpps pom DIR also puts the POM host's MPP mpp2 on its own
// "server": a local sshd on 127.0.0.2 (testdata/sshd), reached over SSH.
// It then writes DIR/mpp-sshd.ready and serves until it gets SIGINT or
// SIGTERM, when it stops the sshd.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"upgrader/testdata/simhost"
	"upgrader/testdata/sshd"
)

func main() {
	serve := flag.Bool("serve-mpps", false, "put MPP mpp2 of the POM host on a local sshd and serve it until stopped")
	flag.Parse()
	host, dir := "pom", ""
	switch flag.NArg() {
	case 1:
		dir = flag.Arg(0)
	case 2:
		host, dir = flag.Arg(0), flag.Arg(1)
	default:
		fmt.Fprintf(os.Stderr, "usage: mksim [-serve-mpps] [HOST] DIR; hosts: %v\n", simhost.Hosts)
		os.Exit(2)
	}
	s, err := simhost.SetupHost(host, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mksim:", err)
		os.Exit(1)
	}
	fmt.Println(s.Profile)
	if !*serve {
		return
	}
	srv, err := sshd.Start(1)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mksim:", err)
		os.Exit(1)
	}
	defer srv.Close()
	if err := s.RemoteMPPs(srv, srv.Port, srv.UserKey, simhost.RemoteMPP{Name: "mpp2", Host: srv.Hosts[0], Patch: "7.2.0.0.1202"}); err != nil {
		fmt.Fprintln(os.Stderr, "mksim:", err)
		srv.Close()
		os.Exit(1)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	ready := fmt.Sprintf("mpp2 %s:%d %s\n", srv.Hosts[0], srv.Port, s.MPPHostDir("mpp2"))
	if err := os.WriteFile(filepath.Join(dir, "mpp-sshd.ready"), []byte(ready), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "mksim:", err)
		return
	}
	<-stop
}
