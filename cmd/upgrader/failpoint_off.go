//go:build !failpoints

package main

// failpoint is compiled out of release builds.
var failpoint func(point, step string)
