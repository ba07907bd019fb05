package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
)

// TestPolicyWarnsOfDefaultsNothingApplies: defaults in the file do nothing
// unless a mutating webhook configuration sends StatefulSets, and the log
// says so at load and at reload.
func TestPolicyWarnsOfDefaultsNothingApplies(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.yaml")
	write := func(defaults string) {
		t.Helper()
		if err := os.WriteFile(file, []byte("apiVersion: stateguard.io/v1alpha1\nkind: Config\n"+defaults), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name       string
		defaulting bool
		defaults   string
		warned     bool
	}{
		{"defaults without the mutating webhook", false, "defaults: {podManagementPolicy: Parallel}\n", true},
		{"defaults with the mutating webhook", true, "defaults: {podManagementPolicy: Parallel}\n", false},
		{"no defaults", false, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logged []string
			log := funcr.New(func(_, args string) { logged = append(logged, args) }, funcr.Options{})
			write("")
			p, err := NewPolicy(file, tt.defaulting, prometheus.NewRegistry(), log)
			if err != nil {
				t.Fatal(err)
			}
			write(tt.defaults)
			p.reload()
			warned := strings.Contains(strings.Join(logged, "\n"), "no mutating webhook configuration is registered")
			if warned != tt.warned {
				t.Errorf("warned: %v, want %v; logged:\n%s", warned, tt.warned, strings.Join(logged, "\n"))
			}
		})
	}
}
