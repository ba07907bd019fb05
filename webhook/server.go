// Package webhook is stateguard's admission webhook: controller-runtime
// handlers that decode the request, ask the engine, and answer.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
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
		decoder: admission.NewDecoder(mgr.GetScheme()),
		metrics: metrics,
		log:     log.WithName("admission"),
	}
	scheme := mgr.GetScheme()
	server := mgr.GetWebhookServer()
	for path, hook := range map[string]*admission.Webhook{
		PathValidateStatefulSet: admission.WithValidator(scheme, admission.Validator[*appsv1.StatefulSet](statefulSets{j})),
		PathMutateStatefulSet:   admission.WithDefaulter(scheme, admission.Defaulter[*appsv1.StatefulSet](statefulSets{j})),
		PathValidateDeployment:  admission.WithValidator(scheme, admission.Validator[*appsv1.Deployment](deployments{j})),
		PathValidateHPA:         admission.WithValidator(scheme, admission.Validator[*autoscalingv2.HorizontalPodAutoscaler](autoscalers{j})),
		PathValidateScale:       {Handler: scales{j}},
	} {
		server.Register(path, withHTTPStatus(hook))
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

// withHTTPStatus gives a request the webhook could not read (its answer
// names no request UID) the answer's 4xx status instead of 200, so that
// malformed bodies show up as client errors.
func withHTTPStatus(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &bufferedResponse{header: w.Header()}
		next.ServeHTTP(rec, r)
		var review struct {
			Response struct {
				UID    string `json:"uid"`
				Status *struct {
					Code int `json:"code"`
				} `json:"status"`
			} `json:"response"`
		}
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		if code == http.StatusOK && json.Unmarshal(rec.body.Bytes(), &review) == nil && review.Response.UID == "" &&
			review.Response.Status != nil && review.Response.Status.Code >= 400 && review.Response.Status.Code < 500 {
			code = review.Response.Status.Code
		}
		w.WriteHeader(code)
		_, _ = w.Write(rec.body.Bytes())
	})
}

type bufferedResponse struct {
	header http.Header
	body   bytes.Buffer
	code   int
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(code int)        { b.code = code }
