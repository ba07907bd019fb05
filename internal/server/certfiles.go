package server

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// certFiles writes the serving certificate of a self-managed Secret into
// the certificate directory whenever the Secret changes. A mounted Secret
// volume reaches the Pod only at the kubelet's next sync, up to a minute
// and more after the leader first writes it; until then no replica is
// ready. From the API, every replica serves the certificate within a
// second of its creation or renewal.
type certFiles struct {
	clientset         kubernetes.Interface
	namespace, secret string
	dir               string
	log               logr.Logger
}

func (*certFiles) NeedLeaderElection() bool { return false }

// Start writes the files on every change of the Secret until ctx ends.
func (c *certFiles) Start(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(c.clientset, 10*time.Minute, informers.WithNamespace(c.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", c.secret).String()
		}))
	informer := factory.Core().V1().Secrets().Informer()
	write := func(obj any) {
		// The field selector keeps other Secrets out; a fake client does not.
		if s, ok := obj.(*corev1.Secret); ok && s.Name == c.secret {
			if err := c.write(s); err != nil {
				c.log.Error(err, "writing the serving certificate", "secret", c.namespace+"/"+c.secret, "dir", c.dir)
			}
		}
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    write,
		UpdateFunc: func(_, obj any) { write(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	return nil
}

// write replaces tls.crt and tls.key when the Secret holds a pair that
// differs from the files. Each file is written under a temporary name and
// renamed, so that the server never reads half of one; the key goes first,
// and the server reloads the pair when the certificate changes.
func (c *certFiles) write(s *corev1.Secret) error {
	crt, key := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	if len(crt) == 0 || len(key) == 0 {
		return nil // not issued yet
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{corev1.TLSPrivateKeyKey, key}, {corev1.TLSCertKey, crt}} {
		path := filepath.Join(c.dir, f.name)
		if current, err := os.ReadFile(path); err == nil && bytes.Equal(current, f.data) {
			continue
		}
		tmp := filepath.Join(c.dir, "."+f.name+".tmp")
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("replacing %s: %w", path, err)
		}
		c.log.Info("wrote the serving certificate from its Secret", "file", path)
	}
	return nil
}
