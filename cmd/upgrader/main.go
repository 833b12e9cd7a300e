// Command upgrader plans, runs and resumes Avaya contact-center server
// installs, upgrades and migrations.
package main

import (
	"os"

	"upgrader/steps/job"
)

// version is set at build time (make build).
var version = "dev"

func main() {
	// A step's long child (an installer) runs under upgrader's own binary
	// started again as its supervisor: never through the command line.
	if len(os.Args) > 1 && os.Args[1] == job.Arg {
		os.Exit(job.Main(os.Args[2:]))
	}
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
