// Command demo starts a local control plane, installs stateguard with its
// Helm chart the way the end-to-end test does, applies the examples and
// shows what kubectl prints, then keeps everything running until Ctrl-C
// or `make demo-down`. Run it with `make demo`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stateguard/stateguard/internal/localcluster"
)

func main() {
	assets := flag.String("assets", "", "the folder with kube-apiserver, etcd and kubectl")
	helm := flag.String("helm", "", "the helm binary")
	binary := flag.String("binary", "bin/stateguard", "the stateguard binary")
	state := flag.String("state", "bin/demo", "where the demo keeps its kubeconfig, logs and pid file")
	flag.Parse()
	if err := run(*assets, *helm, *binary, *state); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(assets, helm, binary, state string) error {
	if err := os.RemoveAll(state); err != nil {
		return err
	}
	if err := os.MkdirAll(state, 0o700); err != nil {
		return err
	}
	state, _ = filepath.Abs(state)
	pidFile := filepath.Join(state, "pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return err
	}
	defer os.Remove(pidFile)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	kubeconfig := filepath.Join(state, "kubeconfig")
	step("Starting kube-apiserver and etcd (no kubelet: objects are stored, no Pod runs)")
	cluster, err := localcluster.Start(assets, kubeconfig)
	if err != nil {
		return err
	}
	defer func() {
		step("Stopping the control plane")
		_ = cluster.Stop()
	}()

	step("helm install stateguard charts/stateguard -n stateguard-system (self-managed TLS; defaults: podManagementPolicy Parallel, whenDeleted Delete; background audit every 10s)")
	release, err := localcluster.Install(cluster, helm, "charts/stateguard", binary, "stateguard", "stateguard-system", state,
		"--set", "defaults.podManagementPolicy=Parallel", "--set", "defaults.persistentVolumeClaimRetentionPolicy.whenDeleted=Delete",
		"--set", "audit.interval=10s")
	if err != nil {
		return err
	}
	defer func() {
		step("Stopping stateguard")
		release.Stop()
	}()
	fmt.Printf("stateguard generated its CA, injected it into its webhook configurations and is serving (log: %s)\n", release.Log)

	kubectl := func(args ...string) {
		fmt.Printf("\n$ kubectl %s\n", strings.Join(args, " "))
		cmd := exec.Command(filepath.Join(assets, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		_ = cmd.Run() // denials are the point: kubectl's exit status is shown by its output
	}
	step("The violating examples: denials name the rule, the field and the fix; warn rules print Warning:")
	kubectl("apply", "-f", "examples/violations/namespace.yaml")
	kubectl("apply", "-f", "examples/violations/")
	step("kubectl scale over a ReadWriteOnce claim")
	kubectl("-n", "shop", "scale", "deployment/reports", "--replicas=3")

	step("The compliant examples are admitted, and the configured defaults land on the StatefulSets")
	namespaces, _ := filepath.Glob("examples/compliant/*/namespace.yaml")
	kubectl(append([]string{"apply"}, fileArgs(namespaces)...)...)
	kubectl("apply", "-R", "-f", "examples/compliant/")
	kubectl("get", "statefulsets", "-A", "-o",
		"custom-columns=NAMESPACE:.metadata.namespace,NAME:.metadata.name,POD-MANAGEMENT:.spec.podManagementPolicy,WHEN-DELETED:.spec.persistentVolumeClaimRetentionPolicy.whenDeleted,DEFAULTED:.metadata.annotations.stateguard\\.io/defaulted")

	stateguard := func(args ...string) {
		fmt.Printf("\n$ stateguard %s\n", strings.Join(args, " "))
		cmd := exec.Command(binary, append(args, "--kubeconfig", kubeconfig)...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		if err := cmd.Run(); err != nil {
			fmt.Println(err) // the exit status is part of the answer
		}
	}
	step("Rolling out in dryrun: the namespace annotation admits the same manifests silently; audit and Events say what enforcing would deny")
	kubectl("annotate", "namespace", "shop", "stateguard.io/enforcement=dryrun")
	kubectl("apply", "-f", "examples/violations/")
	stateguard("audit", "-n", "shop")
	fmt.Println("\n(waiting for the next background audit pass)")
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(12 * time.Second):
	}
	kubectl("get", "events", "-n", "shop", "--field-selector", "reason=PolicyViolation", "-o", "custom-columns=OBJECT:.involvedObject.name,MESSAGE:.message")

	step("Try your own manifests")
	fmt.Printf(`  export KUBECONFIG=%s
  kubectl apply -f your-manifests/          # or: kubectl apply --dry-run=server -f ...
  bin/stateguard check -f your-manifests/   # the same rules, offline
  bin/stateguard audit -A                   # the same rules, on what runs
  kubectl -n stateguard-system edit configmap stateguard   # change the policy (enforcement: warn, ...): stateguard reloads it
stateguard's log: %s
Stop with Ctrl-C here, or make demo-down from another terminal.
`, kubeconfig, release.Log)
	<-ctx.Done()
	if errors.Is(ctx.Err(), context.Canceled) {
		fmt.Println()
	}
	return nil
}

func step(s string) { fmt.Printf("\n==> %s\n", s) }

func fileArgs(files []string) []string {
	var args []string
	for _, f := range files {
		args = append(args, "-f", f)
	}
	return args
}
