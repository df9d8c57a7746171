package main

import (
	"fmt"
	"os"
)

// runMount implements 'gzfs mount'.
func runMount(args []string) int {
	fmt.Fprintln(os.Stderr, "gzfs mount: not implemented yet")
	return 1
}
