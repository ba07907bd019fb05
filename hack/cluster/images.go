package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// importImages imports the image archives into containerd's k8s.io
// namespace, where the kubelet finds them; an image already there under
// the same name is replaced, so a rebuilt image takes effect for new Pods.
func importImages(c config) error {
	for _, archive := range c.images {
		abs, err := filepath.Abs(archive)
		if err != nil {
			return err
		}
		out, err := exec.Command("ctr", "--address", filepath.Join(runDir, "containerd.sock"), "--namespace", "k8s.io",
			"images", "import", abs).CombinedOutput()
		if err != nil {
			return fmt.Errorf("importing %s into the node: %v\n%s", archive, err, out)
		}
		fmt.Printf("imported %s\n", strings.TrimSpace(string(out)))
	}
	return nil
}
