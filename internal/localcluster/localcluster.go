// Package localcluster runs stateguard the way a cluster would, on this
// machine: a real kube-apiserver and etcd (no kubelet), the chart installed
// with helm, and the stateguard binary started with the arguments of the
// installed Deployment. The chart's Service becomes an ExternalName for
// localhost, so kube-apiserver dials this host on the Service's port (443)
// while verifying the certificate for the Service's name. Standing in for
// the kubelet, it keeps the certificate and configuration directories in
// step with the chart's Secret and ConfigMap. The end-to-end test and
// `make demo` share it.
package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// Cluster is a kube-apiserver and etcd with a cluster-admin kubeconfig.
type Cluster struct {
	Kubeconfig string
	Config     *rest.Config
	Clientset  *kubernetes.Clientset
	env        *envtest.Environment
}

// Start starts kube-apiserver and etcd from assets and writes the admin
// kubeconfig to kubeconfig.
func Start(assets, kubeconfig string) (*Cluster, error) {
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	c := &Cluster{Kubeconfig: kubeconfig, Config: cfg, env: env}
	admin, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err == nil {
		var kc []byte
		if kc, err = admin.KubeConfig(); err == nil {
			err = os.WriteFile(kubeconfig, kc, 0o600)
		}
	}
	if err == nil {
		c.Clientset, err = kubernetes.NewForConfig(cfg)
	}
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return c, nil
}

// Stop stops kube-apiserver and etcd.
func (c *Cluster) Stop() error { return c.env.Stop() }

// Release is a helm release of the chart with the stateguard binary
// serving it from this host.
type Release struct {
	Name, Namespace string
	Log             string // the binary's log file
	cluster         *Cluster
	helm, chart     string
	serve           *exec.Cmd
	exited          chan struct{} // closed when the binary has exited
	stop            context.CancelFunc
}

// Install installs chart as release name in namespace (self-managed TLS,
// plus helmArgs), starts binary with the installed Deployment's arguments,
// and waits until it is ready and its CA is in both webhook
// configurations. work holds the binary's directories and log.
func Install(c *Cluster, helm, chart, binary, name, namespace, work string, helmArgs ...string) (*Release, error) {
	r := &Release{Name: name, Namespace: namespace, cluster: c, helm: helm, chart: chart, Log: filepath.Join(work, "stateguard.log")}
	if err := r.helmRun(append([]string{"install", name, chart, "--create-namespace", "--set", "certManager.enabled=false"}, helmArgs...)...); err != nil {
		return nil, err
	}
	if err := r.pointServiceAtHost(); err != nil {
		return nil, err
	}
	manifest, err := r.helmOutput("get", "manifest", name)
	if err != nil {
		return nil, err
	}
	args, err := deploymentArgs(manifest)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	certDir, configDir := filepath.Join(work, "tls"), filepath.Join(work, "config")
	for _, dir := range []string{certDir, configDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	healthAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	replace := map[string]string{
		"--config":                    filepath.Join(configDir, "config.yaml"),
		"--cert-dir":                  certDir,
		"--port":                      "443", // the port of the Service kube-apiserver dials
		"--metrics-bind-address":      fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"--health-probe-bind-address": healthAddr,
	}
	for i, arg := range args {
		if flag, _, ok := strings.Cut(arg, "="); ok && replace[flag] != "" {
			args[i] = flag + "=" + replace[flag]
		}
	}

	ctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	fullname := r.fullname()
	go playKubelet(ctx, certDir, func(ctx context.Context) (string, map[string][]byte, error) {
		s, err := c.Clientset.CoreV1().Secrets(namespace).Get(ctx, fullname+"-tls", metav1.GetOptions{})
		if err != nil {
			return "", nil, err
		}
		return s.ResourceVersion, s.Data, nil
	})
	go playKubelet(ctx, configDir, func(ctx context.Context) (string, map[string][]byte, error) {
		m, err := c.Clientset.CoreV1().ConfigMaps(namespace).Get(ctx, fullname, metav1.GetOptions{})
		if err != nil {
			return "", nil, err
		}
		data := map[string][]byte{}
		for k, v := range m.Data {
			data[k] = []byte(v)
		}
		return m.ResourceVersion, data, nil
	})
	if err := waitFor(10*time.Second, "the chart's ConfigMap in "+configDir, func() bool {
		_, err := os.Stat(replace["--config"])
		return err == nil
	}); err != nil {
		stop()
		return nil, err
	}

	log, err := os.Create(r.Log)
	if err != nil {
		stop()
		return nil, err
	}
	r.serve = exec.CommandContext(ctx, binary, append(args, "--kubeconfig", c.Kubeconfig)...)
	r.serve.Env = append(os.Environ(), "POD_NAMESPACE="+namespace)
	r.serve.Stdout, r.serve.Stderr = log, log
	r.serve.Cancel = func() error { return r.serve.Process.Signal(os.Interrupt) }
	r.serve.WaitDelay = 10 * time.Second
	if err := r.serve.Start(); err != nil {
		stop()
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = r.serve.Wait(); close(exited) }()
	r.exited = exited
	if err := waitFor(60*time.Second, "stateguard to be ready", func() bool {
		if closed(exited) {
			return true // reported below
		}
		resp, err := http.Get("http://" + healthAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); err != nil || closed(exited) {
		r.Stop()
		log, _ := os.ReadFile(r.Log)
		return nil, fmt.Errorf("stateguard did not become ready (it serves on port 443, which needs root or CAP_NET_BIND_SERVICE); the end of its log:\n%s", tail(log, 15))
	}
	if err := waitFor(30*time.Second, "the CA in both webhook configurations", r.caInjected); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

// caInjected reports whether both webhook configurations trust the CA in
// the release's Secret.
func (r *Release) caInjected() bool {
	ctx, fullname := context.Background(), r.fullname()
	secret, err := r.cluster.Clientset.CoreV1().Secrets(r.Namespace).Get(ctx, fullname+"-tls", metav1.GetOptions{})
	if err != nil || len(secret.Data["ca.crt"]) == 0 {
		return false
	}
	v, err := r.cluster.Clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, fullname, metav1.GetOptions{})
	if err != nil {
		return false
	}
	m, err := r.cluster.Clientset.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, fullname, metav1.GetOptions{})
	if err != nil {
		return false
	}
	for _, w := range v.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, secret.Data["ca.crt"]) {
			return false
		}
	}
	for _, w := range m.Webhooks {
		if !bytes.Equal(w.ClientConfig.CABundle, secret.Data["ca.crt"]) {
			return false
		}
	}
	return true
}

// Upgrade runs helm upgrade --reuse-values with args. helm takes its
// Service back (server-side apply, --force-conflicts), so it is pointed
// at this host again.
func (r *Release) Upgrade(args ...string) error {
	if err := r.helmRun(append([]string{"upgrade", r.Name, r.chart, "--reuse-values", "--force-conflicts"}, args...)...); err != nil {
		return err
	}
	return r.pointServiceAtHost()
}

// Uninstall runs helm uninstall.
func (r *Release) Uninstall() error { return r.helmRun("uninstall", r.Name) }

// Stop stops the binary (SIGINT, as a Pod's SIGTERM) and waits for it.
func (r *Release) Stop() {
	r.stop()
	if r.exited != nil {
		<-r.exited
	}
}

func (r *Release) pointServiceAtHost() error {
	patch := `{"spec":{"type":"ExternalName","externalName":"localhost","clusterIP":"","clusterIPs":null,"selector":null}}`
	_, err := r.cluster.Clientset.CoreV1().Services(r.Namespace).Patch(context.Background(), r.fullname(), "application/merge-patch+json", []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("turning the chart's Service into an ExternalName for localhost: %w", err)
	}
	return nil
}

// fullname is the chart's name for its objects (stateguard.fullname).
func (r *Release) fullname() string {
	if strings.Contains(r.Name, "stateguard") {
		return r.Name
	}
	return r.Name + "-stateguard"
}

func (r *Release) helmRun(args ...string) error {
	_, err := r.helmOutput(args...)
	return err
}

func (r *Release) helmOutput(args ...string) (string, error) {
	cmd := exec.Command(r.helm, append(args, "--kubeconfig", r.cluster.Kubeconfig, "--namespace", r.Namespace)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// deploymentArgs returns the stateguard container's arguments from a manifest.
func deploymentArgs(manifest string) ([]string, error) {
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
			return nil, err
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if d.Kind == "Deployment" && c.Name == "stateguard" {
				return c.Args, nil
			}
		}
	}
	return nil, errors.New("the manifest has no Deployment with a stateguard container")
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

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

func waitFor(timeout time.Duration, what string, done func() bool) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if done() {
			return nil
		}
	}
	return fmt.Errorf("waited %s for %s", timeout, what)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
