// Command mksim sets up the simulated POM 3.1.1 host in a directory:
// go run ./testdata/simhost/mksim DIR
package main

import (
	"fmt"
	"os"

	"upgrader/testdata/simhost"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mksim DIR")
		os.Exit(2)
	}
	s, err := simhost.Setup(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "mksim:", err)
		os.Exit(1)
	}
	fmt.Println(s.Profile)
}
