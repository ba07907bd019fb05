// Package webhook is stateguard's admission webhook: controller-runtime
// handlers that decode the request, ask the engine, and answer.
package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/stateguard/stateguard/audit"
	"github.com/stateguard/stateguard/engine"
)

// Paths of the handlers; the chart's webhook configurations name them.
const (
	PathValidateStatefulSet = "/validate-apps-v1-statefulset"
	PathMutateStatefulSet   = "/mutate-apps-v1-statefulset"
	PathValidateDeployment  = "/validate-apps-v1-deployment"
	PathValidateScale       = "/validate-apps-v1-deployment-scale"
	PathValidateHPA         = "/validate-autoscaling-v2-horizontalpodautoscaler"
)

// cachedKinds are the objects the lookups read from the manager's cache.
var cachedKinds = []client.Object{
	&corev1.Service{}, &corev1.PersistentVolumeClaim{}, &corev1.Namespace{},
	&appsv1.Deployment{}, &autoscalingv2.HorizontalPodAutoscaler{},
}

// Options configure Setup.
type Options struct {
	ConfigFile string // the policy file; "" runs the built-in policy
	CertDir    string // holds tls.crt and tls.key
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
}

// Setup registers the handlers, the HPA index, the configuration watcher
// and the readiness checks on mgr.
func Setup(ctx context.Context, mgr manager.Manager, opts Options, log logr.Logger) error {
	metrics := NewMetrics(ctrlmetrics.Registry)
	policy, err := NewPolicy(opts.ConfigFile, metrics, log.WithName("policy"))
	if err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &autoscalingv2.HorizontalPodAutoscaler{}, hpaTargetIndex, indexHPATarget); err != nil {
		return err
	}
	if opts.CertRotation != nil {
		if err := addCertRotator(mgr, *opts.CertRotation, opts.CertDir); err != nil {
			return err
		}
	}
	if opts.Certificate != "" {
		client, err := cmclient.NewForConfig(mgr.GetConfig())
		if err != nil {
			return err
		}
		if err := mgr.Add(newCertificateWatch(client, opts.CertificateNamespace, opts.Certificate, ctrlmetrics.Registry, log.WithName("certificate"))); err != nil {
			return err
		}
	}
	j := &judge{
		policy:  policy,
		lookup:  &cacheLookup{cache: mgr.GetCache(), live: mgr.GetAPIReader()},
		live:    mgr.GetAPIReader(),
		metrics: metrics,
		log:     log.WithName("admission"),
	}
	// The webhook server starts once the certificate is in place (a Secret
	// volume fills in after the Pod starts when stateguard issues it
	// itself); until then the replica is not ready.
	var server atomic.Pointer[webhook.Server]
	if err := mgr.Add(everyReplica(func(ctx context.Context) error {
		if err := waitForCertificate(ctx, opts.CertDir, log); err != nil {
			return err
		}
		s := mgr.GetWebhookServer()
		for path, handler := range handlers(j) {
			s.Register(path, handler)
		}
		server.Store(&s)
		return nil
	})); err != nil {
		return err
	}
	if err := mgr.Add(everyReplica(policy.Start)); err != nil {
		return err
	}

	informers := cachedKinds
	if opts.AuditInterval > 0 {
		informers = append(slices.Clip(informers), &appsv1.StatefulSet{})
		if err := addBackgroundAudit(mgr, policy, opts, log.WithName("audit")); err != nil {
			return err
		}
	}
	// Start the informers with the manager, and be ready only once they
	// have synced and the TLS listener is up.
	for _, obj := range informers {
		if _, err := mgr.GetCache().GetInformer(ctx, obj, cache.BlockUntilSynced(false)); err != nil {
			return err
		}
	}
	var synced atomic.Bool
	if err := mgr.Add(everyReplica(func(ctx context.Context) error {
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return ctx.Err()
		}
		synced.Store(true)
		log.Info("caches synced")
		return nil
	})); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("caches", func(*http.Request) error {
		if !synced.Load() {
			return errors.New("caches have not synced yet")
		}
		return nil
	}); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhook", func(req *http.Request) error {
		s := server.Load()
		if s == nil {
			return errors.New("waiting for the serving certificate")
		}
		return (*s).StartedChecker()(req)
	}); err != nil {
		return err
	}
	return mgr.AddHealthzCheck("ping", healthz.Ping)
}

// addBackgroundAudit adds the background audit, which runs on the elected
// leader and reads the same caches as the webhook.
func addBackgroundAudit(mgr manager.Manager, policy *Policy, opts Options, log logr.Logger) error {
	// A first pass may record many Events at once; client-go's default
	// of 5 requests per second would stretch it to minutes.
	eventsConfig := rest.CopyConfig(mgr.GetConfig())
	eventsConfig.QPS, eventsConfig.Burst = 50, 100
	clientset, err := kubernetes.NewForConfig(eventsConfig)
	if err != nil {
		return err
	}
	return mgr.Add(&audit.Background{
		Cache:    mgr.GetCache(),
		Engine:   policy.Engine,
		Interval: opts.AuditInterval,
		Excluded: opts.ExcludedNamespaces,
		Events:   clientset.CoreV1(),
		Ledger:   &audit.Ledger{ConfigMaps: clientset.CoreV1(), Namespace: opts.AuditLedger.Namespace, Name: opts.AuditLedger.Name},
		Reports: &audit.Reports{
			Client: mgr.GetClient(), Reader: mgr.GetAPIReader(),
			Discovery: clientset.Discovery(), Log: log.WithName("policyreports"),
		},
		Metrics: audit.NewMetrics(ctrlmetrics.Registry),
		Log:     log,
	})
}

// SlimObject is the caches' transform: audit.Slim, which drops what no
// lookup reads and what makes objects large.
func SlimObject(obj any) (any, error) {
	if o, ok := obj.(metav1.Object); ok {
		audit.Slim(o)
	}
	return obj, nil
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

// handlers are the webhook's HTTP handlers around one judge, by path.
func handlers(j *judge) map[string]http.Handler {
	byPath := map[string]admission.Handler{
		PathValidateStatefulSet: validating(func() *appsv1.StatefulSet { return &appsv1.StatefulSet{} },
			admission.Validator[*appsv1.StatefulSet](validator[*appsv1.StatefulSet]{j, "StatefulSet", (*engine.Engine).StatefulSet})),
		PathMutateStatefulSet: defaulting(func() *appsv1.StatefulSet { return &appsv1.StatefulSet{} },
			admission.Defaulter[*appsv1.StatefulSet](statefulSets{j}), statefulSetPatch),
		PathValidateDeployment: validating(func() *appsv1.Deployment { return &appsv1.Deployment{} },
			admission.Validator[*appsv1.Deployment](validator[*appsv1.Deployment]{j, "Deployment", (*engine.Engine).Deployment})),
		PathValidateHPA: validating(func() *autoscalingv2.HorizontalPodAutoscaler { return &autoscalingv2.HorizontalPodAutoscaler{} },
			admission.Validator[*autoscalingv2.HorizontalPodAutoscaler](validator[*autoscalingv2.HorizontalPodAutoscaler]{j, "HorizontalPodAutoscaler", (*engine.Engine).HorizontalPodAutoscaler})),
		PathValidateScale: scales{j},
	}
	served := make(map[string]http.Handler, len(byPath))
	for path, handler := range byPath {
		served[path] = reviewHandler{hook: &admission.Webhook{Handler: handler}, log: j.log}
	}
	return served
}
