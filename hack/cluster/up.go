package main

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The cluster's fixed facts. The Pod and Service ranges never leave this
// machine: Pod addresses live on veth devices into the Pods' network
// namespaces, and the Service range is routed to the loopback device, so a
// Service address kube-proxy has not programmed goes nowhere.
const (
	NodeName      = "stateguard-node"
	ClusterDomain = "cluster.local"
	clusterCIDR   = "10.244.0.0/16"
	nodePodCIDR   = "10.244.0.0/24"
	serviceCIDR   = "10.96.0.0/16"
	dnsServiceIP  = "10.96.0.10"
	// runDir holds containerd's socket and state. It is fixed, so that a
	// cluster left behind by another state folder is found and cleaned up.
	runDir = "/run/stateguard-cluster"
)

// APIServiceIP is the address of the kubernetes Service (the first of the range).
var APIServiceIP = net.ParseIP("10.96.0.1")

// The ports the node's processes listen on; up refuses to start when one is taken.
var ports = map[string]int{"etcd": 2379, "etcd peer": 2380, "kube-apiserver": 6443, "kubelet": 10250, "kubelet healthz": 10248,
	"kube-controller-manager": 10257, "kube-scheduler": 10259, "kube-proxy metrics": 10249, "kube-proxy healthz": 10256}

// hostCommands are the Debian packages' programs the node runs.
var hostCommands = []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc", "iptables", "iptables-save", "iptables-restore",
	"ip6tables", "ip6tables-save", "ip6tables-restore", "conntrack", "ip", "mount"}

type config struct {
	state, kube, cni         string
	pauseImage, corednsImage string   // the names of images among the archives
	images                   []string // OCI image archives to import into the node
}

func (c config) path(elem ...string) string {
	return filepath.Join(append([]string{c.state}, elem...)...)
}

// component is one process of the node.
type component struct {
	name  string
	args  []string
	ready func() error // nil once the component serves
}

func up(c config) error {
	if err := preflight(c); err != nil {
		return err
	}
	if healthy(c) {
		if err := importImages(c); err != nil {
			return err
		}
		fmt.Printf("the cluster is already running: export KUBECONFIG=%s (logs in %s)\n", c.path("kubeconfig"), c.path("logs"))
		return nil
	}
	if owner, err := os.ReadFile(filepath.Join(runDir, "owner")); err == nil {
		fmt.Printf("cleaning up what a previous cluster of %s left behind\n", owner)
		if err := down(string(owner)); err != nil {
			return fmt.Errorf("cleaning up the previous cluster: %w", err)
		}
	}
	if err := portsFree(); err != nil {
		return err
	}
	nodeIP, err := nodeAddress()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(c.state); err != nil {
		return err
	}
	for _, dir := range []string{c.path("logs"), c.path("pids"), c.path("cni", "net.d"), runDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(runDir, "owner"), []byte(c.state), 0o600); err != nil {
		return err
	}
	if err := prepareHost(); err != nil {
		return err
	}
	if err := writePKI(c.path("pki"), "https://127.0.0.1:6443", nodeIP); err != nil {
		return fmt.Errorf("writing certificates: %w", err)
	}
	if err := writeConfigs(c, nodeIP); err != nil {
		return err
	}

	started := time.Now()
	for _, comp := range components(c, nodeIP) {
		if err := start(c, comp); err != nil {
			return fmt.Errorf("%w\n(make cluster-down removes what was started)", err)
		}
		if comp.name == "containerd" {
			if err := importImages(c); err != nil {
				return err
			}
		}
	}
	if err := kubectl(c, "apply", "--server-side", "-f", c.path("addons.yaml")); err != nil {
		return fmt.Errorf("installing CoreDNS and the default StorageClass: %w", err)
	}
	for _, w := range []struct{ what, args string }{
		{"the node to be Ready", "wait --for=condition=Ready node/" + NodeName + " --timeout=180s"},
		{"CoreDNS to be available", "-n kube-system rollout status deployment/coredns --timeout=180s"},
	} {
		if err := kubectl(c, strings.Fields(w.args)...); err != nil {
			return fmt.Errorf("waiting for %s: %w (logs in %s)", w.what, err, c.path("logs"))
		}
	}
	if err := waitFor(60*time.Second, "cluster DNS to answer for kubernetes.default", dnsAnswers); err != nil {
		return err
	}
	fmt.Printf("the cluster is up (%s): export KUBECONFIG=%s\nlogs: %s\nstop it with make cluster-down\n",
		time.Since(started).Round(time.Second), c.path("kubeconfig"), c.path("logs"))
	return nil
}

// preflight names what the node needs and this machine lacks.
func preflight(c config) error {
	if os.Geteuid() != 0 {
		return errors.New("the node runs containers, mounts volumes and programs iptables: run it as root")
	}
	var missing []string
	for _, cmd := range hostCommands {
		if _, err := exec.LookPath(cmd); err != nil {
			missing = append(missing, cmd)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: make cluster installs them with apt-get install containerd runc iptables conntrack iproute2", strings.Join(missing, ", "))
	}
	for _, bin := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"} {
		if _, err := os.Stat(filepath.Join(c.kube, bin)); err != nil {
			return fmt.Errorf("missing %s in %s: build it with make cluster-tools", bin, c.kube)
		}
	}
	for _, bin := range []string{"ptp", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(c.cni, bin)); err != nil {
			return fmt.Errorf("missing the CNI plugin %s in %s: build it with make cluster-tools", bin, c.cni)
		}
	}
	for _, mount := range []string{"cpu", "cpuset", "memory", "pids"} {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", mount, "cgroup.procs")); err != nil {
			return fmt.Errorf("the cgroup v1 %s controller is not mounted at /sys/fs/cgroup/%s: the node needs cgroup v1 controllers (as this machine kind has)", mount, mount)
		}
	}
	return nil
}

// healthy reports whether the cluster of this state folder is running:
// each of its processes is alive and the node is Ready.
func healthy(c config) bool {
	owner, err := os.ReadFile(filepath.Join(runDir, "owner"))
	if err != nil || string(owner) != c.state {
		return false
	}
	for _, comp := range components(c, nil) {
		if pid, _ := livePID(c.state, comp.name); pid == 0 {
			return false
		}
	}
	out, err := exec.Command(filepath.Join(c.kube, "kubectl"), "--kubeconfig", c.path("kubeconfig"), "get", "node", NodeName,
		"-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`).Output()
	return err == nil && string(out) == "True"
}

func portsFree() error {
	for name, port := range ports {
		l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
		if err != nil {
			return fmt.Errorf("port %d (%s) is in use: stop what listens on it (ss -ltnp 'sport = :%d')", port, name, port)
		}
		l.Close()
	}
	return nil
}

// nodeAddress is the IPv4 address of the interface that holds the default
// route, else the first global IPv4 address: Pods reach kube-apiserver
// there, through the kubernetes Service.
func nodeAddress() (net.IP, error) {
	if out, err := exec.Command("ip", "-4", "-o", "route", "get", "192.0.2.200").Output(); err == nil {
		fields := strings.Fields(string(out))
		for i, f := range fields {
			if f == "src" && i+1 < len(fields) {
				if ip := net.ParseIP(fields[i+1]); ip != nil && !ip.IsLoopback() {
					return ip, nil
				}
			}
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP, nil
		}
	}
	return nil, errors.New("this machine has no non-loopback IPv4 address for the node")
}

// prepareHost turns on forwarding between the Pods' veth devices and
// routes the Service range to the loopback device.
func prepareHost() error {
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		return fmt.Errorf("turning on IPv4 forwarding: %w", err)
	}
	if out, err := exec.Command("ip", "route", "replace", "local", serviceCIDR, "dev", "lo", "table", "local").CombinedOutput(); err != nil {
		return fmt.Errorf("routing the Service range %s to the loopback device: %v: %s", serviceCIDR, err, out)
	}
	return nil
}

// start runs comp in its own session, its output in STATE/logs, its pid
// in STATE/pids, and waits until it is ready or has exited.
func start(c config, comp component) error {
	log, err := os.OpenFile(c.path("logs", comp.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	bin := comp.name
	if comp.name != "containerd" {
		bin = filepath.Join(c.kube, comp.name)
	}
	cmd := exec.Command(bin, comp.args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir = c.state
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", comp.name, err)
	}
	if err := os.WriteFile(c.path("pids", comp.name), []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited (%v); the end of %s:\n%s", comp.name, err, log.Name(), tailFile(log.Name(), 20))
		case <-time.After(250 * time.Millisecond):
		}
		err := comp.ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s was not ready after 90s (%v); the end of %s:\n%s", comp.name, err, log.Name(), tailFile(log.Name(), 20))
		}
	}
}

func components(c config, nodeIP net.IP) []component {
	pki := func(name string) string { return c.path("pki", name) }
	kubeconfig := func(name string) string { return c.path(name + ".kubeconfig") }
	insecure := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(url string) func() error {
		return func() error {
			resp, err := insecure.Get(url)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: %s", url, resp.Status)
			}
			return nil
		}
	}
	return []component{
		{"etcd", []string{"--name=node", "--data-dir=" + c.path("etcd"),
			"--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
			"--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
			"--initial-cluster=node=http://127.0.0.1:2380", "--unsafe-no-fsync"},
			get("http://127.0.0.1:2379/health")},
		{"kube-apiserver", []string{"--etcd-servers=http://127.0.0.1:2379", "--secure-port=6443", "--advertise-address=" + nodeIP.String(),
			"--service-cluster-ip-range=" + serviceCIDR, "--tls-cert-file=" + pki("apiserver.crt"), "--tls-private-key-file=" + pki("apiserver.key"),
			"--client-ca-file=" + pki("ca.crt"), "--kubelet-client-certificate=" + pki("apiserver-kubelet-client.crt"),
			"--kubelet-client-key=" + pki("apiserver-kubelet-client.key"), "--kubelet-preferred-address-types=InternalIP", "--service-account-issuer=https://kubernetes.default.svc." + ClusterDomain,
			"--service-account-key-file=" + pki("sa.pub"), "--service-account-signing-key-file=" + pki("sa.key"),
			"--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction", "--allow-privileged=true", "--profiling=false"},
			get("https://127.0.0.1:6443/readyz")},
		{"containerd", []string{"--config", c.path("containerd.toml")}, func() error {
			_, err := os.Stat(filepath.Join(runDir, "containerd.sock"))
			return err
		}},
		{"kube-controller-manager", []string{"--kubeconfig=" + kubeconfig("controller-manager"),
			"--authentication-kubeconfig=" + kubeconfig("controller-manager"), "--authorization-kubeconfig=" + kubeconfig("controller-manager"),
			"--bind-address=127.0.0.1", "--secure-port=10257", "--leader-elect=false", "--use-service-account-credentials",
			"--service-account-private-key-file=" + pki("sa.key"), "--root-ca-file=" + pki("ca.crt"),
			"--service-cluster-ip-range=" + serviceCIDR, "--allocate-node-cidrs", "--cluster-cidr=" + clusterCIDR, "--node-cidr-mask-size=24",
			"--enable-hostpath-provisioner", "--profiling=false"},
			get("https://127.0.0.1:10257/healthz")},
		{"kube-scheduler", []string{"--kubeconfig=" + kubeconfig("scheduler"),
			"--authentication-kubeconfig=" + kubeconfig("scheduler"), "--authorization-kubeconfig=" + kubeconfig("scheduler"),
			"--bind-address=127.0.0.1", "--secure-port=10259", "--leader-elect=false", "--profiling=false"},
			get("https://127.0.0.1:10259/healthz")},
		{"kubelet", []string{"--config=" + c.path("kubelet.yaml"), "--kubeconfig=" + kubeconfig("kubelet"), "--root-dir=" + c.path("kubelet"),
			"--cert-dir=" + c.path("kubelet", "pki"), "--hostname-override=" + NodeName, "--node-ip=" + nodeIP.String()},
			get("http://127.0.0.1:10248/healthz")},
		{"kube-proxy", []string{"--config=" + c.path("kube-proxy.yaml")}, get("http://127.0.0.1:10256/healthz")},
	}
}

//go:embed addons.yaml
var addons string

// writeConfigs writes the configuration files of containerd, the CNI
// network, the kubelet and kube-proxy, and the addons' manifest.
func writeConfigs(c config, nodeIP net.IP) error {
	files := map[string]string{
		"containerd.toml": fmt.Sprintf(`version = 2
root = %q
state = %q
[grpc]
  address = %q
[ttrpc]
  address = %q
[plugins."io.containerd.internal.v1.opt"]
  path = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # This machine denies CAP_SYS_RESOURCE, even to root: no process may lower
  # its oom_score_adj, and runc fails to start a Pod whose score the kubelet
  # or containerd would set below containerd's own. Clamp it instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
  # Every image is imported; no registry is reachable. A pull of anything
  # else fails at once on a closed local port instead of leaving the machine.
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."*"]
    endpoint = ["http://127.0.0.1:9"]
`, c.path("containerd"), filepath.Join(runDir, "containerd"), filepath.Join(runDir, "containerd.sock"), filepath.Join(runDir, "containerd-ttrpc.sock"),
			c.path("containerd", "opt"), c.pauseImage, filepath.Join(runDir, "runc"), c.cni, c.path("cni", "net.d")),
		filepath.Join("cni", "net.d", "10-stateguard.conflist"): fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "stateguard",
  "plugins": [
    {"type": "ptp", "mtu": 1400, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}], "dataDir": %q}}
  ]
}
`, nodePodCIDR, c.path("cni", "ipam")),
		"kubelet.yaml": fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 is what this machine kind mounts; kubelet 1.35+ refuses it unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
clusterDNS: [%s]
clusterDomain: %s
# Pods with dnsPolicy Default get no name server: nothing resolves outside the cluster.
resolvConf: ""
failSwapOn: false
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
podLogsDir: %q
volumePluginDir: %q
# The images cannot be pulled again: never collect them, and evict only when the disk is nearly full.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%%, imagefs.available: 1%%, nodefs.inodesFree: 1%%}
`, filepath.Join(runDir, "containerd.sock"), c.path("pki", "ca.crt"), dnsServiceIP, ClusterDomain, c.path("pod-logs"), c.path("kubelet-plugins")),
		"kube-proxy.yaml": fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %q}
hostnameOverride: %s
mode: iptables
clusterCIDR: %s
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# Leave the host's conntrack table sizes and timeouts as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, c.path("kube-proxy.kubeconfig"), NodeName, clusterCIDR),
		"addons.yaml": strings.NewReplacer("DNS_SERVICE_IP", dnsServiceIP, "COREDNS_IMAGE", c.corednsImage, "CLUSTER_DOMAIN", ClusterDomain).Replace(addons),
	}
	for name, content := range files {
		if err := os.WriteFile(c.path(name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func kubectl(c config, args ...string) error {
	cmd := exec.Command(filepath.Join(c.kube, "kubectl"), append([]string{"--kubeconfig", c.path("kubeconfig")}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// dnsAnswers asks the cluster DNS Service, from this host, for the
// kubernetes Service's address.
func dnsAnswers() bool {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, net.JoinHostPort(dnsServiceIP, "53"))
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, "kubernetes.default.svc."+ClusterDomain)
	return err == nil && len(addrs) == 1 && addrs[0] == APIServiceIP.String()
}

func waitFor(timeout time.Duration, what string, done func() bool) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if done() {
			return nil
		}
	}
	return fmt.Errorf("waited %s for %s", timeout, what)
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
