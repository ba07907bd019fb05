// Command genmanifests writes a large compliant input for timing
// `stateguard check`: genmanifests -objects 10000 > input.yaml
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/stateguard/stateguard/test/manifests"
)

func main() {
	objects := flag.Int("objects", 10000, "how many objects to write (a multiple of 4)")
	flag.Parse()
	if err := manifests.Write(os.Stdout, *objects); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
