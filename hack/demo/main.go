// Command demo shows stateguard on the one-node cluster of `make cluster`:
// it installs the chart as the README tells a user, runs the seed
// tutorials' counter demo (a StatefulSet keeps its Pods' names and data,
// a Deployment does not), applies the violating examples through the
// webhook's Service, and rolls the policy out in dryrun with `stateguard
// audit` and the background audit's Events. The cluster keeps running
// afterwards; `make cluster-down` stops it. Run it with `make demo`.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

var kubeconfig, kubectlBin, helmBin, stateguardBin string

func main() {
	flag.StringVar(&kubeconfig, "kubeconfig", "bin/cluster/kubeconfig", "the cluster's kubeconfig")
	flag.StringVar(&kubectlBin, "kubectl", "", "the kubectl binary")
	flag.StringVar(&helmBin, "helm", "", "the helm binary")
	flag.StringVar(&stateguardBin, "binary", "bin/stateguard", "the stateguard binary, for stateguard audit")
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	var err error
	if kubeconfig, err = filepath.Abs(kubeconfig); err != nil {
		return err
	}
	step("A fresh start: remove what an earlier demo installed")
	quiet(helmBin, "uninstall", "stateguard", "--namespace", "stateguard-system", "--ignore-not-found", "--wait")
	quiet(kubectlBin, "delete", "namespace", "shop", "statefulset-demo", "bookstore", "--ignore-not-found", "--wait")

	step("Install stateguard as a user without cert-manager would (self-managed TLS); the demo's values set StatefulSet defaults and audit every 10s")
	if err := show(helmBin, "install", "stateguard", "charts/stateguard", "--namespace", "stateguard-system", "--create-namespace",
		"--set", "certManager.enabled=false", "--set", "defaults.podManagementPolicy=Parallel",
		"--set", "defaults.persistentVolumeClaimRetentionPolicy.whenDeleted=Delete", "--set", "audit.interval=10s",
		"--wait", "--timeout", "5m"); err != nil {
		return fmt.Errorf("helm install: %w", err)
	}
	kubectl("-n", "stateguard-system", "get", "pods", "-o", "wide")
	if err := awaitWebhook(); err != nil {
		return err
	}

	step("The counter demo: the same app as a Deployment on emptyDir and as a StatefulSet with its headless Service and claims")
	kubectl("apply", "-f", "examples/compliant/statefulset-demo/namespace.yaml")
	kubectl("apply", "-f", "examples/compliant/statefulset-demo/")
	for _, workload := range []string{"statefulset/counter-sts", "deployment/counter-deploy"} {
		if err := show(kubectlBin, "--kubeconfig", kubeconfig, "-n", "statefulset-demo", "rollout", "status", workload, "--timeout=180s"); err != nil {
			return err
		}
	}
	kubectl("-n", "statefulset-demo", "get", "pods,pvc", "-o", "wide")
	page := func(host string) {
		kubectl("-n", "statefulset-demo", "exec", "deployment/counter-deploy", "-c", "web", "--", "wget", "-qO-", "http://"+host)
	}
	fmt.Println("\nEach StatefulSet Pod has a stable DNS name through the headless Service; from a Deployment Pod:")
	page("counter-sts-0.counter-sts")
	page("counter-sts-1.counter-sts")

	step("Delete a Pod of each: the StatefulSet's comes back as counter-sts-0 with its claim and count; the Deployment's comes back under a new name, counting from 1")
	deployPod := mustOutput(kubectlBin, "--kubeconfig", kubeconfig, "-n", "statefulset-demo", "get", "pods", "-l", "variant=deployment", "-o", "jsonpath={.items[0].metadata.name}")
	kubectl("-n", "statefulset-demo", "delete", "pod", "counter-sts-0", deployPod)
	for _, workload := range []string{"statefulset/counter-sts", "deployment/counter-deploy"} {
		if err := show(kubectlBin, "--kubeconfig", kubeconfig, "-n", "statefulset-demo", "rollout", "status", workload, "--timeout=180s"); err != nil {
			return err
		}
	}
	kubectl("-n", "statefulset-demo", "get", "pods", "-o", "wide")
	page("counter-sts-0.counter-sts")
	for _, name := range strings.Fields(mustOutput(kubectlBin, "--kubeconfig", kubeconfig, "-n", "statefulset-demo", "get", "pods", "-l", "variant=deployment", "-o", "jsonpath={.items[*].metadata.name}")) {
		kubectl("-n", "statefulset-demo", "exec", name, "-c", "web", "--", "wget", "-qO-", "http://127.0.0.1")
	}

	step("The violating examples, through the webhook's Service: denials name the rule, the field and the fix; warn rules print Warning:")
	kubectl("apply", "-f", "examples/violations/namespace.yaml")
	kubectl("apply", "-f", "examples/violations/")
	step("kubectl scale over a ReadWriteOnce claim")
	kubectl("-n", "shop", "scale", "deployment/reports", "--replicas=3")

	step("The other compliant examples are admitted, and the configured defaults land on the StatefulSets")
	kubectl("apply", "-f", "examples/compliant/bookstore/namespace.yaml")
	kubectl("apply", "-R", "-f", "examples/compliant/")
	kubectl("get", "statefulsets", "-A", "-o",
		"custom-columns=NAMESPACE:.metadata.namespace,NAME:.metadata.name,POD-MANAGEMENT:.spec.podManagementPolicy,WHEN-DELETED:.spec.persistentVolumeClaimRetentionPolicy.whenDeleted,DEFAULTED:.metadata.annotations.stateguard\\.io/defaulted")

	step("Rolling out in dryrun: the namespace annotation admits the same manifests silently; audit and Events say what enforcing would deny")
	kubectl("annotate", "namespace", "shop", "stateguard.io/enforcement=dryrun")
	kubectl("apply", "-f", "examples/violations/")
	fmt.Printf("\n$ stateguard audit -n shop\n")
	audit := exec.Command(stateguardBin, "audit", "-n", "shop", "--kubeconfig", kubeconfig)
	audit.Stdout, audit.Stderr = os.Stdout, os.Stdout
	if err := audit.Run(); err != nil {
		fmt.Println(err) // the exit status is part of the answer
	}
	fmt.Println("\n(waiting for the next background audit pass)")
	time.Sleep(12 * time.Second)
	kubectl("get", "events", "-n", "shop", "--field-selector", "reason=PolicyViolation", "-o", "custom-columns=OBJECT:.involvedObject.name,MESSAGE:.message")

	step("Try your own manifests")
	fmt.Printf(`  export KUBECONFIG=%s
  kubectl apply -f your-manifests/          # or: kubectl apply --dry-run=server -f ...
  bin/stateguard check -f your-manifests/   # the same rules, offline
  bin/stateguard audit -A                   # the same rules, on what runs
  kubectl -n stateguard-system logs deployment/stateguard
  kubectl -n stateguard-system edit configmap stateguard   # change the policy (enforcement: warn, ...): stateguard reloads it
The cluster keeps running; make cluster-down stops it.
`, kubeconfig)
	return nil
}

func step(s string) { fmt.Printf("\n==> %s\n", s) }

// awaitWebhook returns once the API server reaches the webhook through its
// Service. helm --wait returns when the Pods are Ready, which can be a moment
// before kube-proxy routes the Service to them; until then every guarded
// write fails with "connection refused".
func awaitWebhook() error {
	deadline := time.Now().Add(time.Minute)
	for {
		// A StatefulSet without its Service: sent to stateguard, and denied once it answers.
		probe, err := os.ReadFile("examples/violations/headless-service-missing.yaml")
		if err != nil {
			return err
		}
		cmd := exec.Command(kubectlBin, "--kubeconfig", kubeconfig, "apply", "--dry-run=server", "-f", "-")
		cmd.Stdin = strings.NewReader(strings.ReplaceAll(string(probe), "namespace: shop", "namespace: default"))
		out, err := cmd.CombinedOutput()
		if !strings.Contains(string(out), "failed calling webhook") && (err == nil || strings.Contains(string(out), "denied the request")) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the API server did not reach the webhook through its Service within a minute: %s", out)
		}
		time.Sleep(time.Second)
	}
}

// kubectl shows a kubectl command and its output; denials are the point,
// so its exit status shows only through its output.
func kubectl(args ...string) {
	_ = show(kubectlBin, append([]string{"--kubeconfig", kubeconfig}, args...)...)
}

// show prints a command as a user would type it, then runs it.
func show(bin string, args ...string) error {
	shown := args
	if len(shown) > 1 && shown[0] == "--kubeconfig" {
		shown = shown[2:]
	}
	fmt.Printf("\n$ %s %s\n", filepath.Base(bin), strings.Join(shown, " "))
	cmd := exec.Command(bin, args...)
	if filepath.Base(bin) == "helm" {
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	return cmd.Run()
}

func quiet(bin string, args ...string) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	_ = cmd.Run()
}

func output(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		err = fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, exit.Stderr)
	}
	return strings.TrimSpace(string(out)), err
}

func mustOutput(bin string, args ...string) string {
	out, err := output(bin, args...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
	}
	return out
}
