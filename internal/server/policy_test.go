package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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

// TestOneBadEditIsOneReloadError: the events of one ConfigMap update reload
// the same bad file several times; it is counted and logged once, and the
// same mistake made again after a good file is counted again.
func TestOneBadEditIsOneReloadError(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.yaml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	good := "apiVersion: stateguard.io/v1alpha1\nkind: Config\n"
	bad := good + "enforcement: maybe\n"
	write(good)
	var logged []string
	p, err := NewPolicy(file, false, prometheus.NewRegistry(), funcr.New(func(_, args string) { logged = append(logged, args) }, funcr.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	write(bad)
	for range 3 {
		p.reload()
	}
	if got := testutil.ToFloat64(p.reloadErrors); got != 1 || len(logged) != 1 {
		t.Errorf("one bad edit: %v reload errors, %d log lines; want 1 and 1", got, len(logged))
	}
	write(good)
	p.reload()
	write(bad)
	p.reload()
	p.reload()
	if got := testutil.ToFloat64(p.reloadErrors); got != 2 {
		t.Errorf("the bad edit made again: %v reload errors in all, want 2", got)
	}
}
