package integration

import (
	"os/exec"
	"strings"
	"testing"
)

// TestServerBinaryLeavesOutCheck: the image's binary, which every other
// test serves with, says how to run check instead of running it.
func TestServerBinaryLeavesOutCheck(t *testing.T) {
	out, err := exec.Command(serverBin, "check", "-f", "-").CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != 2 || !strings.Contains(string(out), "this build leaves out check") {
		t.Errorf("check with the image's binary: %v, %q; want exit status 2 and a note", err, out)
	}
	out, err = exec.Command(serverBin, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "stateguard ") {
		t.Errorf("version with the image's binary: %v, %q", err, out)
	}
}
