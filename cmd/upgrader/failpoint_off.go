//go:build !failpoints

package main

// failpoint is compiled out of release builds.
var failpoint func(point, step string)

// stateFailpoint is compiled out of release builds.
var stateFailpoint func(point string)
