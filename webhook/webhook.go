// Package webhook is stateguard's admission webhook: one handler per kind
// that decodes the AdmissionReview once, hands the object and the old
// object to the engine, and turns its verdict into the answer. What the
// handlers need (the policy in force, the lookups) is given to Setup; the
// server around them is wired by the serve command.
package webhook

import (
	"net/http"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/lookup"
)

// Paths of the handlers; the chart's webhook configurations name them.
const (
	PathValidateStatefulSet = "/validate-apps-v1-statefulset"
	PathMutateStatefulSet   = "/mutate-apps-v1-statefulset"
	PathValidateDeployment  = "/validate-apps-v1-deployment"
	PathValidateScale       = "/validate-apps-v1-deployment-scale"
	PathValidateHPA         = "/validate-autoscaling-v2-horizontalpodautoscaler"
)

// Options are what the handlers judge with.
type Options struct {
	Engine  func() *engine.Engine // the policy in force
	Lookup  engine.Lookup
	Live    lookup.Reader // fresh reads: the Deployment behind a Scale
	Metrics *Metrics
	Log     logr.Logger
	// Limits bound the reviews in flight; the zero value is DefaultLimits.
	Limits Limits
	// Draining, when set, reports whether the server is stopping: each
	// answer then closes its connection. The API server keeps its
	// connections to a replica after the replica leaves the Service's
	// endpoints; one it sends a review on just as the stopping server
	// closes it idle fails that review (EOF), while one closed after an
	// answer is redialled to a replica that stays.
	Draining func() bool
}

// Setup registers the admission handlers on the webhook server.
func Setup(s ctrlwebhook.Server, opts Options) {
	for path, handler := range Handlers(opts) {
		if opts.Draining != nil {
			handler = closingWhenDraining(handler, opts.Draining)
		}
		s.Register(path, handler)
	}
}

func closingWhenDraining(h http.Handler, draining func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining() {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// Handlers are the HTTP handlers of the admission webhook, by path.
func Handlers(opts Options) map[string]http.Handler {
	j := &judge{engine: opts.Engine, lookup: opts.Lookup, live: opts.Live, metrics: opts.Metrics, log: opts.Log}
	type handler struct {
		admission.Handler
		decode reviewDecoder
	}
	byPath := map[string]handler{
		PathValidateStatefulSet: {validating[*appsv1.StatefulSet]{j, "StatefulSet", (*engine.Engine).StatefulSet}, decodeReviewOf((*judgedStatefulSet).object)},
		PathMutateStatefulSet:   {defaulting{j}, decodeReviewOf((*defaultedStatefulSet).object)},
		PathValidateDeployment:  {validating[*appsv1.Deployment]{j, "Deployment", (*engine.Engine).Deployment}, decodeReviewOf((*judgedDeployment).object)},
		PathValidateHPA: {validating[*autoscalingv2.HorizontalPodAutoscaler]{j, "HorizontalPodAutoscaler", (*engine.Engine).HorizontalPodAutoscaler},
			decodeWholeReview[autoscalingv2.HorizontalPodAutoscaler]()},
		PathValidateScale: {scales{j}, decodeWholeReview[autoscalingv1.Scale]()},
	}
	limits := opts.Limits
	if limits == (Limits{}) {
		limits = DefaultLimits
	}
	slots := newReviewSlots(limits)
	served := make(map[string]http.Handler, len(byPath))
	for path, handler := range byPath {
		// The handlers log with their own logger: controller-runtime's
		// per-request one would cost a dozen allocations per review.
		hook := &admission.Webhook{Handler: handler.Handler, LogConstructor: func(base logr.Logger, _ *admission.Request) logr.Logger { return base }}
		served[path] = reviewHandler{hook: hook, decode: handler.decode, slots: slots, log: opts.Log}
	}
	return served
}
