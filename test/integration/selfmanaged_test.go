package integration

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateguard/stateguard/internal/localcluster"
)

// TestHelmInstallEndToEnd installs the chart with self-managed TLS with
// helm and serves it with the binary started from the installed
// Deployment's arguments (internal/localcluster says how). stateguard must
// fill the chart's Secret and inject its CA into both webhook
// configurations (Install waits for both), deny the example violations,
// admit them after `helm upgrade --set enforcement=dryrun`, and leave no
// webhook configuration behind after `helm uninstall`.
func TestHelmInstallEndToEnd(t *testing.T) {
	const release, ns = "e2e", "stateguard-e2e"
	fullname := release + "-stateguard"
	// The package's own webhook judges every namespace too: keep it out of
	// the way for this test.
	setMainPolicy(t, "apiVersion: stateguard.io/v1alpha1\nkind: Config\nenforcement: dryrun\n")

	r, err := localcluster.Install(cluster, helmBin, "../../charts/stateguard", stateguardBin, release, ns, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	uninstalled := false
	defer func() {
		r.Stop()
		if !uninstalled {
			_ = r.Uninstall()
		}
		if t.Failed() {
			log, _ := os.ReadFile(r.Log)
			t.Logf("stateguard's log:\n%s", lastLines(log, 40))
		}
	}()

	// The examples' violations are denied, with their fixes.
	if _, err := kubectl("", "apply", "-f", "../../examples/violations/namespace.yaml"); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := kubectlIn("", "apply", "-f", "../../examples/violations/")
	if err == nil {
		t.Errorf("kubectl apply -f examples/violations/ succeeded, want denials")
	}
	contains(t, stderr,
		`admission webhook "statefulsets.validate.stateguard.io" denied the request: StatefulSet "mysql" violates 1 stateguard rule:`,
		"statefulset-emptydir-data: spec.template.spec.containers[0].volumeMounts[0]:",
		`StatefulSet "jenkins" violates 1 stateguard rule:`, `StatefulSet "redis" violates 1 stateguard rule:`,
		`admission webhook "horizontalpodautoscalers.validate.stateguard.io" denied the request`,
		`admission webhook "deployments.validate.stateguard.io" denied the request: Deployment "storefront"`,
		"Warning: deployment-rwo-rolling-update: spec.strategy:")

	// In dryrun, the same manifests are admitted.
	if err := r.Upgrade("--set", "enforcement=dryrun"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, _, err = kubectlIn("", "apply", "--dry-run=server", "-f", "../../examples/violations/headless-service-missing.yaml"); err == nil {
			break
		}
	}
	if _, stderr, err = kubectlIn("", "apply", "-f", "../../examples/violations/"); err != nil || strings.Contains(stderr, "Warning") {
		t.Errorf("after helm upgrade --set enforcement=dryrun: err=%v\n%s", err, stderr)
	}

	if err := r.Uninstall(); err != nil {
		t.Fatal(err)
	}
	uninstalled = true
	ctx := context.Background()
	if _, err := clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, fullname, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after helm uninstall, the ValidatingWebhookConfiguration: %v", err)
	}
	if _, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, fullname, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after helm uninstall, the MutatingWebhookConfiguration: %v", err)
	}
}

// setMainPolicy swaps the package server's policy for the rest of the
// test and waits until it is in force.
func setMainPolicy(t *testing.T, policy string) {
	t.Helper()
	original, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(configFile, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.WriteFile(configFile, original, 0o644)
		time.Sleep(time.Second) // the reload is asynchronous
	})
	time.Sleep(time.Second)
}
