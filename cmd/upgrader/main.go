// Command upgrader plans, runs and resumes Avaya contact-center server
// installs, upgrades and migrations.
package main

import (
	"os"
)

// version is set at build time (make build).
var version = "dev"

func main() {
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
