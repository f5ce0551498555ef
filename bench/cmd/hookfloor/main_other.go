//go:build !linux

// Command hookfloor measures the floor of BPF hooks under file syscalls;
// it runs on Linux only (see main.go).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "hookfloor: Linux only")
	os.Exit(2)
}
