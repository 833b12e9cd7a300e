// Command mksim sets up a simulated host in a directory:
// go run ./testdata/simhost/mksim [HOST] DIR   (HOST defaults to pom)
package main

import (
	"fmt"
	"os"

	"upgrader/testdata/simhost"
)

func main() {
	host, dir := "pom", ""
	switch len(os.Args) {
	case 2:
		dir = os.Args[1]
	case 3:
		host, dir = os.Args[1], os.Args[2]
	default:
		fmt.Fprintf(os.Stderr, "usage: mksim [HOST] DIR; hosts: %v\n", simhost.Hosts)
		os.Exit(2)
	}
	s, err := simhost.SetupHost(host, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mksim:", err)
		os.Exit(1)
	}
	fmt.Println(s.Profile)
}
