// Package webhook is stateguard's admission webhook: controller-runtime
// handlers that decode the request, ask the engine, and answer.
package webhook

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
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

// Setup registers the handlers, the HPA index, the configuration watcher
// and the readiness checks on mgr. configFile "" runs the built-in policy.
func Setup(ctx context.Context, mgr manager.Manager, configFile string, log logr.Logger) error {
	metrics := NewMetrics(ctrlmetrics.Registry)
	policy, err := NewPolicy(configFile, metrics, log.WithName("policy"))
	if err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &autoscalingv2.HorizontalPodAutoscaler{}, hpaTargetIndex, indexHPATarget); err != nil {
		return err
	}
	j := &judge{
		policy:  policy,
		lookup:  &cacheLookup{cache: mgr.GetCache(), live: mgr.GetAPIReader()},
		live:    mgr.GetAPIReader(),
		metrics: metrics,
		log:     log.WithName("admission"),
	}
	server := mgr.GetWebhookServer()
	for path, handler := range handlers(j) {
		server.Register(path, handler)
	}
	if err := mgr.Add(policy); err != nil {
		return err
	}

	// Start the informers with the manager, and be ready only once they
	// have synced and the TLS listener is up.
	for _, obj := range cachedKinds {
		if _, err := mgr.GetCache().GetInformer(ctx, obj, cache.BlockUntilSynced(false)); err != nil {
			return err
		}
	}
	var synced atomic.Bool
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
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
	if err := mgr.AddReadyzCheck("webhook", server.StartedChecker()); err != nil {
		return err
	}
	return mgr.AddHealthzCheck("ping", healthz.Ping)
}

// handlers are the webhook's HTTP handlers around one judge, by path.
func handlers(j *judge) map[string]http.Handler {
	byPath := map[string]admission.Handler{
		PathValidateStatefulSet: validating(func() *appsv1.StatefulSet { return &appsv1.StatefulSet{} }, admission.Validator[*appsv1.StatefulSet](statefulSets{j})),
		PathMutateStatefulSet:   defaulting(func() *appsv1.StatefulSet { return &appsv1.StatefulSet{} }, admission.Defaulter[*appsv1.StatefulSet](statefulSets{j}), statefulSetPatch),
		PathValidateDeployment:  validating(func() *appsv1.Deployment { return &appsv1.Deployment{} }, admission.Validator[*appsv1.Deployment](deployments{j})),
		PathValidateHPA: validating(func() *autoscalingv2.HorizontalPodAutoscaler { return &autoscalingv2.HorizontalPodAutoscaler{} },
			admission.Validator[*autoscalingv2.HorizontalPodAutoscaler](autoscalers{j})),
		PathValidateScale: scales{j},
	}
	served := make(map[string]http.Handler, len(byPath))
	for path, handler := range byPath {
		served[path] = reviewHandler{hook: &admission.Webhook{Handler: handler}, log: j.log}
	}
	return served
}
