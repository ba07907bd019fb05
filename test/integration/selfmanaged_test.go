package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// TestHelmInstallEndToEnd installs the chart with self-managed TLS into the
// control plane with helm, turns its Service into an ExternalName for this
// host, and runs the binary with the arguments of the installed
// Deployment. The API server dials this process on the Service's port 443
// while verifying the certificate for the Service's name. The test plays
// the kubelet, keeping --cert-dir and the config directory in step with
// the chart's Secret and ConfigMap. stateguard must fill the Secret, inject
// its CA into both webhook configurations, deny the example violations,
// admit them after `helm upgrade --set enforcement=dryrun`, and leave no
// webhook configuration behind after `helm uninstall`.
func TestHelmInstallEndToEnd(t *testing.T) {
	const release, ns = "e2e", "stateguard-e2e"
	fullname := release + "-stateguard"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The package's own webhook judges every namespace too: keep it out of
	// the way for this test.
	setMainPolicy(t, "apiVersion: stateguard.io/v1alpha1\nkind: Config\nenforcement: dryrun\n")

	helmIn := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(helmBin, append(args, "--kubeconfig", kubeconfig, "--namespace", ns)...).CombinedOutput()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	helmIn("install", release, "../../charts/stateguard", "--create-namespace", "--set", "certManager.enabled=false")
	uninstalled := false
	defer func() {
		if !uninstalled {
			_ = exec.Command(helmBin, "uninstall", release, "--kubeconfig", kubeconfig, "--namespace", ns).Run()
		}
	}()
	// The stand-in for the Pods behind the Service, set again after each
	// helm upgrade (which takes the Service back, --force-conflicts).
	pointServiceAtHost := func() {
		t.Helper()
		if _, err := kubectl("", "-n", ns, "patch", "service", fullname, "--type=merge",
			"-p", `{"spec":{"type":"ExternalName","externalName":"localhost","clusterIP":"","clusterIPs":null,"selector":null}}`); err != nil {
			t.Fatal(err)
		}
	}
	pointServiceAtHost()

	// The installed Deployment's arguments, with the host's ports and directories.
	args := deploymentArgs(t, helmIn("get", "manifest", release))
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	certDir, configDir := t.TempDir(), t.TempDir()
	replace := map[string]string{
		"--config":                    filepath.Join(configDir, "config.yaml"),
		"--cert-dir":                  certDir,
		"--port":                      "443", // the port of the Service the API server dials
		"--metrics-bind-address":      fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"--health-probe-bind-address": fmt.Sprintf("127.0.0.1:%d", ports[1]),
	}
	for i, arg := range args {
		if name, _, ok := strings.Cut(arg, "="); ok && replace[name] != "" {
			args[i] = name + "=" + replace[name]
		}
	}
	go playKubelet(ctx, certDir, func(ctx context.Context) (string, map[string][]byte, error) {
		s, err := clientset.CoreV1().Secrets(ns).Get(ctx, fullname+"-tls", metav1.GetOptions{})
		if err != nil {
			return "", nil, err
		}
		return s.ResourceVersion, s.Data, nil
	})
	go playKubelet(ctx, configDir, func(ctx context.Context) (string, map[string][]byte, error) {
		c, err := clientset.CoreV1().ConfigMaps(ns).Get(ctx, fullname, metav1.GetOptions{})
		if err != nil {
			return "", nil, err
		}
		data := map[string][]byte{}
		for k, v := range c.Data {
			data[k] = []byte(v)
		}
		return c.ResourceVersion, data, nil
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(replace["--config"]); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatal("the chart's ConfigMap did not appear")
		}
	}

	var log bytes.Buffer
	serve := exec.CommandContext(ctx, stateguardBin, append(args, "--kubeconfig", kubeconfig)...)
	serve.Env = append(os.Environ(), "POD_NAMESPACE="+ns)
	serve.Stdout, serve.Stderr = &log, &log
	serve.Cancel = func() error { return serve.Process.Signal(os.Interrupt) }
	serve.WaitDelay = 10 * time.Second
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = serve.Wait()
		if t.Failed() {
			t.Logf("stateguard's log:\n%s", lastLines(log.Bytes(), 40))
		}
	}()
	if err := waitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1]), 60*time.Second); err != nil {
		t.Fatal(err)
	}

	// stateguard filled the Secret and injected its CA into both configurations.
	secret, err := clientset.CoreV1().Secrets(ns).Get(ctx, fullname+"-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	caPEM := secret.Data["ca.crt"]
	if len(caPEM) == 0 || len(secret.Data["tls.crt"]) == 0 || len(secret.Data["tls.key"]) == 0 {
		t.Fatalf("the Secret holds %d keys, want ca.crt, tls.crt and tls.key", len(secret.Data))
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		v, err := clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, fullname, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, fullname, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(v.Webhooks[0].ClientConfig.CABundle, caPEM) && bytes.Equal(m.Webhooks[0].ClientConfig.CABundle, caPEM) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the CA was not injected into both webhook configurations within 30s")
		}
	}

	// The examples' violations are denied, with their fixes.
	if _, err := kubectl("", "apply", "-f", "../../examples/violations/namespace.yaml"); err != nil {
		t.Fatal(err)
	}
	var stderr string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		// The API server may need a moment to trust the injected CA.
		if _, stderr, _ = kubectlIn("", "apply", "--dry-run=server", "-f", "../../examples/violations/headless-service-missing.yaml"); strings.Contains(stderr, "denied the request") {
			break
		}
	}
	_, stderr, err = kubectlIn("", "apply", "-f", "../../examples/violations/")
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
	helmIn("upgrade", release, "../../charts/stateguard", "--reuse-values", "--set", "enforcement=dryrun", "--force-conflicts")
	pointServiceAtHost()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, _, err = kubectlIn("", "apply", "--dry-run=server", "-f", "../../examples/violations/headless-service-missing.yaml"); err == nil {
			break
		}
	}
	if _, stderr, err = kubectlIn("", "apply", "-f", "../../examples/violations/"); err != nil || strings.Contains(stderr, "Warning") {
		t.Errorf("after helm upgrade --set enforcement=dryrun: err=%v\n%s", err, stderr)
	}

	helmIn("uninstall", release)
	uninstalled = true
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

// deploymentArgs returns the stateguard container's arguments from a
// rendered or installed manifest.
func deploymentArgs(t *testing.T, manifest string) []string {
	t.Helper()
	for _, doc := range strings.Split(manifest, "\n---") {
		var d struct {
			Kind string `json:"kind"`
			Spec struct {
				Template struct {
					Spec corev1.PodSpec `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatal(err)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if d.Kind == "Deployment" && c.Name == "stateguard" {
				return c.Args
			}
		}
	}
	t.Fatal("no stateguard container in the manifest")
	return nil
}

// playKubelet keeps dir in step with an object's data, as a Secret or
// ConfigMap volume is: each key a file, replaced by rename.
func playKubelet(ctx context.Context, dir string, get func(context.Context) (string, map[string][]byte, error)) {
	var last string
	for ctx.Err() == nil {
		version, data, err := get(ctx)
		if err == nil && version != last {
			for key, value := range data {
				tmp := filepath.Join(dir, "."+key)
				if os.WriteFile(tmp, value, 0o600) == nil {
					_ = os.Rename(tmp, filepath.Join(dir, key))
				}
			}
			last = version
		}
		time.Sleep(200 * time.Millisecond)
	}
}
