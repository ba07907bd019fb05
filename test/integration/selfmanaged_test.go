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

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// TestSelfManagedTLS renders the chart with certManager.enabled=false and
// runs the binary with the arguments of the rendered Deployment. The
// chart's Service becomes an ExternalName for localhost, so the API server
// dials this process while verifying the certificate for the Service's
// name. The test plays the kubelet, copying the Secret into --cert-dir.
// stateguard must fill the chart's empty Secret, inject its CA into both
// webhook configurations, become ready, and be reachable with it.
func TestSelfManagedTLS(t *testing.T) {
	const release, ns = "selfmanaged", "stateguard-self"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := kubectl("", "create", "namespace", ns); err != nil {
		t.Fatal(err)
	}
	ports, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(helmBin, "template", release, "../../charts/stateguard", "--namespace", ns, "--set", "certManager.enabled=false").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	// Only namespaces labelled for this test reach this release: the
	// package's main webhook ignores them.
	onlyHere := &metav1.LabelSelector{MatchLabels: map[string]string{"stateguard-test": release}}
	var args []string
	for _, doc := range strings.Split(string(out), "\n---") {
		var meta struct {
			metav1.TypeMeta   `json:",inline"`
			metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		switch {
		case meta.Kind == "Secret":
			mustApply(t, ns, doc)
		case meta.Kind == "Service" && meta.Name == release+"-stateguard":
			// The webhook Service, as an ExternalName for this host.
			mustApply(t, ns, fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s}\nspec: {type: ExternalName, externalName: localhost}\n", meta.Name))
		case meta.Kind == "Deployment":
			args = deploymentArgs(t, doc)
		case meta.Kind == "ValidatingWebhookConfiguration":
			var c admissionregistrationv1.ValidatingWebhookConfiguration
			mustUnmarshal(t, doc, &c)
			for i := range c.Webhooks {
				c.Webhooks[i].ClientConfig.Service.Port = ptrTo(int32(ports[0]))
				c.Webhooks[i].NamespaceSelector = onlyHere
			}
			if _, err := clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, &c, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			defer clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), c.Name, metav1.DeleteOptions{})
		case meta.Kind == "MutatingWebhookConfiguration":
			var c admissionregistrationv1.MutatingWebhookConfiguration
			mustUnmarshal(t, doc, &c)
			for i := range c.Webhooks {
				c.Webhooks[i].ClientConfig.Service.Port = ptrTo(int32(ports[0]))
				c.Webhooks[i].NamespaceSelector = onlyHere
			}
			if _, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &c, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			defer clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), c.Name, metav1.DeleteOptions{})
		}
	}
	if args == nil {
		t.Fatal("the chart rendered no Deployment")
	}

	// The Deployment's arguments, with the host's ports and directories.
	certDir := t.TempDir()
	configDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(configDir, "config.yaml"), []byte(testConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	replace := map[string]string{
		"--config":                    filepath.Join(configDir, "config.yaml"),
		"--cert-dir":                  certDir,
		"--port":                      fmt.Sprint(ports[0]),
		"--metrics-bind-address":      fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--health-probe-bind-address": fmt.Sprintf("127.0.0.1:%d", ports[2]),
	}
	for i, arg := range args {
		if name, _, ok := strings.Cut(arg, "="); ok && replace[name] != "" {
			args[i] = name + "=" + replace[name]
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
	go playKubelet(ctx, ns, release+"-stateguard-tls", certDir)

	if err := waitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[2]), 60*time.Second); err != nil {
		t.Fatal(err)
	}
	secret, err := clientset.CoreV1().Secrets(ns).Get(ctx, release+"-stateguard-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	caPEM := secret.Data["ca.crt"]
	if len(caPEM) == 0 || len(secret.Data["tls.crt"]) == 0 || len(secret.Data["tls.key"]) == 0 {
		t.Fatalf("the Secret holds %d keys, want ca.crt, tls.crt and tls.key", len(secret.Data))
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		v, err := clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, release+"-stateguard", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, release+"-stateguard", metav1.GetOptions{})
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

	// The API server reaches this release over the certificate it issued.
	target := namespace(t, map[string]string{"stateguard-test": release, "stateguard.io/ignore": "true"}, nil)
	var stderr string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, stderr, err = kubectlIn(statefulSetWithoutService("db"), "apply", "--dry-run=server", "-n", target, "-f", "-"); strings.Contains(stderr, "denied the request") {
			break
		}
	}
	contains(t, stderr, `admission webhook "statefulsets.validate.stateguard.io" denied the request`, "statefulset-headless-service: spec.serviceName:")
}

// deploymentArgs returns the stateguard container's arguments.
func deploymentArgs(t *testing.T, doc string) []string {
	t.Helper()
	var d struct {
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
		if c.Name == "stateguard" {
			return c.Args
		}
	}
	t.Fatal("no stateguard container in the Deployment")
	return nil
}

// playKubelet keeps dir in step with the Secret, as a Secret volume is.
func playKubelet(ctx context.Context, namespace, name, dir string) {
	var last string
	for ctx.Err() == nil {
		secret, err := clientset.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil && secret.ResourceVersion != last {
			for key, value := range secret.Data {
				tmp := filepath.Join(dir, "."+key)
				if os.WriteFile(tmp, value, 0o600) == nil {
					_ = os.Rename(tmp, filepath.Join(dir, key))
				}
			}
			last = secret.ResourceVersion
		} else if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "reading the Secret:", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func mustUnmarshal(t *testing.T, doc string, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatal(err)
	}
}

func ptrTo[T any](v T) *T { return &v }
