// Package localcluster starts a bare control plane on this machine, a real
// kube-apiserver and etcd without a node, for the integration tests that
// judge objects and need no Pod to run. (`make cluster` runs a whole node:
// see hack/cluster.)
package localcluster

import (
	"fmt"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
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
