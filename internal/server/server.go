// Package server wires `stateguard serve` together on a controller-runtime
// manager: the policy and its reloader, the store of what the rules read
// and its reflectors, TLS (self-managed or cert-manager's), the admission handlers, the
// background audit and readiness, side by side.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/stateguard/stateguard/audit"
	"github.com/stateguard/stateguard/lookup"
	"github.com/stateguard/stateguard/webhook"
)

// Options configure Setup.
type Options struct {
	ConfigFile string // the policy file; "" runs the built-in policy
	CertDir    string // holds tls.crt and tls.key
	// MutatingWebhookConfiguration sends StatefulSets to the defaulting
	// webhook; "" when none is registered (the policy sets no default).
	MutatingWebhookConfiguration string
	// CertRotation, when set, has stateguard keep its own CA and serving
	// certificate in a Secret and inject the CA into its webhook
	// configurations.
	CertRotation *CertRotation
	// Certificate, when set, names the cert-manager Certificate (in
	// CertificateNamespace) whose readiness and expiry are exported.
	Certificate, CertificateNamespace string
	// AuditInterval, when positive, runs the background audit on the
	// elected leader; it skips the ExcludedNamespaces as admission does,
	// and keeps the violations that have had their Event in the ConfigMap
	// AuditLedger.
	AuditInterval      time.Duration
	ExcludedNamespaces []string
	AuditLedger        types.NamespacedName
	// PassResults adds pass results to the audit's PolicyReports.
	PassResults bool
	// LeaderElection has one replica at a time audit and rotate the
	// certificate, electing it with the Lease in LeaderElectionNamespace.
	LeaderElection          bool
	LeaderElectionNamespace string
	// Limits bound the reviews in flight.
	Limits webhook.Limits
	// Draining reports whether the server is stopping (webhook.Options).
	Draining func() bool
}

// Setup adds everything `stateguard serve` runs to mgr.
func Setup(ctx context.Context, mgr manager.Manager, opts Options, log logr.Logger) error {
	policy, err := NewPolicy(opts.ConfigFile, opts.MutatingWebhookConfiguration != "", ctrlmetrics.Registry, log.WithName("policy"))
	if err != nil {
		return err
	}
	if err := mgr.Add(everyReplica(policy.Start)); err != nil {
		return err
	}
	if err := setupTLS(mgr, opts, log); err != nil {
		return err
	}
	live, err := liveReader(mgr.GetConfig())
	if err != nil {
		return err
	}
	store := lookup.NewStore()
	started, err := addWebhook(mgr, opts.CertDir, webhook.Options{
		Engine:   policy.Engine,
		Lookup:   &lookup.Cache{Store: store, Live: live},
		Live:     live,
		Metrics:  webhook.NewMetrics(ctrlmetrics.Registry),
		Log:      log.WithName("admission"),
		Limits:   opts.Limits,
		Draining: opts.Draining,
	}, log)
	if err != nil {
		return err
	}
	var background *audit.Background
	if opts.AuditInterval > 0 {
		if background, err = newBackgroundAudit(mgr, policy, store, opts, log.WithName("audit")); err != nil {
			return err
		}
	}
	synced, err := startReflectors(mgr, store, storedKinds, log)
	if err != nil {
		return err
	}
	if background != nil {
		background.Synced = synced
	}
	if err := addLeaderWork(mgr, opts, background, log.WithName("leader")); err != nil {
		return err
	}
	// Ready once every kind is stored and the TLS listener is up.
	if err := mgr.AddReadyzCheck("caches", func(*http.Request) error {
		if !synced() {
			return errors.New("caches have not synced yet")
		}
		return nil
	}); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", started); err != nil {
		return err
	}
	return mgr.AddHealthzCheck("ping", healthz.Ping)
}

// liveReader reads from the API server past the client's rate limit. A
// live read answers a review the API server is waiting on: a token bucket
// only makes a burst of denials queue (500 a second of one StatefulSet
// without its Service waited 36 ms each behind 50 reads a second, 5 ms
// without). What bounds the reads is the reviews in flight
// (webhook.Limits), reads of one object coalescing (lookup.Cache), and
// the API server's own priority and fairness. It reads through a
// clientset, whose paths are built in: the first read of a kind after
// start waits on no discovery, which the rate limit would hold.
func liveReader(config *rest.Config) (apiReader, error) {
	config = rest.CopyConfig(config)
	config.QPS, config.RateLimiter = -1, nil // negative: no limiter
	clientset, err := protobufClientset(config)
	return apiReader{clientset}, err
}

// apiReader reads the kinds a review reads live: Services, claims and
// Namespaces missing from the store, and the Deployment behind an HPA.
type apiReader struct{ clientset kubernetes.Interface }

func (r apiReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	get := metav1.GetOptions{}
	switch o := obj.(type) {
	case *corev1.Service:
		return readInto(o)(r.clientset.CoreV1().Services(key.Namespace).Get(ctx, key.Name, get))
	case *corev1.PersistentVolumeClaim:
		return readInto(o)(r.clientset.CoreV1().PersistentVolumeClaims(key.Namespace).Get(ctx, key.Name, get))
	case *corev1.Namespace:
		return readInto(o)(r.clientset.CoreV1().Namespaces().Get(ctx, key.Name, get))
	case *appsv1.Deployment:
		return readInto(o)(r.clientset.AppsV1().Deployments(key.Namespace).Get(ctx, key.Name, get))
	}
	return fmt.Errorf("no live read of %T", obj)
}

// readInto copies what a clientset's Get read into obj.
func readInto[T any](obj *T) func(*T, error) error {
	return func(read *T, err error) error {
		if err == nil {
			*obj = *read
		}
		return err
	}
}

// setupTLS has every replica write a self-managed certificate into the
// certificate directory (its rotation is the leader's work), or adds the
// cert-manager Certificate watch.
func setupTLS(mgr manager.Manager, opts Options, log logr.Logger) error {
	if err := ctrlmetrics.Registry.Register(servingCertificateExpiry(opts.CertDir)); err != nil {
		return err
	}
	if c := opts.CertRotation; c != nil {
		if err := c.validate(); err != nil {
			return err
		}
		clientset, err := kubernetes.NewForConfig(mgr.GetConfig())
		if err != nil {
			return err
		}
		return mgr.Add(&certFiles{clientset: clientset, namespace: c.Namespace, secret: c.Secret, dir: opts.CertDir, log: log.WithName("certificate")})
	}
	if opts.Certificate == "" {
		return nil
	}
	client, err := cmclient.NewForConfig(mgr.GetConfig())
	if err != nil {
		return err
	}
	return mgr.Add(newCertificateWatch(client, opts.CertificateNamespace, opts.Certificate, ctrlmetrics.Registry, log.WithName("certificate")))
}

// addWebhook registers the admission handlers once the certificate is in
// place (a Secret volume fills in after the Pod starts when stateguard
// issues it itself): only then is the webhook server started. The
// returned check fails until the server listens.
func addWebhook(mgr manager.Manager, certDir string, handlers webhook.Options, log logr.Logger) (healthz.Checker, error) {
	var server atomic.Pointer[ctrlwebhook.Server]
	err := mgr.Add(everyReplica(func(ctx context.Context) error {
		if err := waitForCertificate(ctx, certDir, log); err != nil {
			return err
		}
		s := mgr.GetWebhookServer()
		webhook.Setup(s, handlers)
		server.Store(&s)
		return nil
	}))
	return func(req *http.Request) error {
		s := server.Load()
		if s == nil {
			return errors.New("waiting for the serving certificate")
		}
		return (*s).StartedChecker()(req)
	}, err
}

// addLeaderWork adds the work one replica does at a time: certificate
// rotation when self-managed, and the background audit when enabled.
func addLeaderWork(mgr manager.Manager, opts Options, background *audit.Background, log logr.Logger) error {
	if opts.CertRotation == nil && background == nil {
		return nil
	}
	var rotator *certRotator
	if c := opts.CertRotation; c != nil {
		clientset, err := kubernetes.NewForConfig(mgr.GetConfig())
		if err != nil {
			return err
		}
		rotator = &certRotator{CertRotation: *c, clientset: clientset, log: log.WithName("certificate"), now: time.Now, settle: certSettle}
	}
	w := &leaderWork{log: log, term: func(ctx context.Context, _ int) error {
		var term termRunnables
		if rotator != nil {
			term = append(term, rotator)
		}
		if background != nil {
			term = append(term, background)
		}
		return term.run(ctx)
	}}
	if opts.LeaderElection {
		clientset, err := kubernetes.NewForConfig(mgr.GetConfig())
		if err != nil {
			return err
		}
		if w.lock, err = newLeaseLock(clientset, opts.LeaderElectionNamespace); err != nil {
			return err
		}
	}
	return mgr.Add(w)
}

// newBackgroundAudit is the background audit, which runs on the elected
// leader and reads the same store as the webhook.
func newBackgroundAudit(mgr manager.Manager, policy *Policy, store *lookup.Store, opts Options, log logr.Logger) (*audit.Background, error) {
	// A first pass may record many Events at once; client-go's default
	// of 5 requests per second would stretch it to minutes.
	eventsConfig := rest.CopyConfig(mgr.GetConfig())
	eventsConfig.QPS, eventsConfig.Burst = 50, 100
	clientset, err := kubernetes.NewForConfig(eventsConfig)
	if err != nil {
		return nil, err
	}
	workloads, err := protobufClientset(mgr.GetConfig())
	if err != nil {
		return nil, err
	}
	return &audit.Background{
		Store:     store,
		Workloads: workloads,
		Engine:    policy.Engine,
		Interval:  opts.AuditInterval,
		Excluded:  opts.ExcludedNamespaces,
		Events:    clientset.CoreV1(),
		Ledger:    &audit.Ledger{ConfigMaps: clientset.CoreV1(), Namespace: opts.AuditLedger.Namespace, Name: opts.AuditLedger.Name},
		Reports: &audit.Reports{
			Client: mgr.GetClient(), Reader: mgr.GetAPIReader(),
			Discovery: clientset.Discovery(), Log: log.WithName("policyreports"), PassResults: opts.PassResults,
		},
		Metrics: audit.NewMetrics(ctrlmetrics.Registry),
		Log:     log,
	}, nil
}

// everyReplica is a runnable that runs on every replica, not only on the
// elected leader.
type everyReplica func(context.Context) error

func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }

// waitForCertificate waits until dir holds a usable tls.crt and tls.key.
func waitForCertificate(ctx context.Context, dir string, log logr.Logger) error {
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	for logged := false; ; logged = true {
		_, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err == nil {
			return nil
		}
		if !logged {
			log.Info("waiting for the serving certificate", "dir", dir, "reason", err.Error())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}
