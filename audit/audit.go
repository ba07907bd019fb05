// Package audit judges what already runs in a cluster with the engine:
// `stateguard audit` lists the objects from the API server, and the server's
// background audit reads them from its caches, records Events, metrics and
// PolicyReports. Both judge the same way `stateguard check` does.
package audit

import (
	"cmp"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateguard/stateguard/batch"
	"github.com/stateguard/stateguard/engine"
)

// LabelIgnore on a namespace keeps stateguard out of it: the webhook
// configurations' namespaceSelector skips it, and so does the audit.
const LabelIgnore = "stateguard.io/ignore"

// DefaultExcludedNamespaces are never sent to the webhook, so an audit of
// all namespaces skips them too.
var DefaultExcludedNamespaces = []string{"kube-system", "kube-node-lease"}

// Objects are the objects of one audit, by kind. Workloads are judged;
// Services, claims and Namespaces are what their rules look up.
type Objects struct {
	StatefulSets []*appsv1.StatefulSet
	Deployments  []*appsv1.Deployment
	HPAs         []*autoscalingv2.HorizontalPodAutoscaler
	Services     []*corev1.Service
	Claims       []*corev1.PersistentVolumeClaim
	Namespaces   []*corev1.Namespace
	// Warnings say what could not be read but did not stop the audit.
	Warnings []string
}

// Scope says which namespaces an audit judges.
type Scope struct {
	// Namespace limits the audit to one namespace; "" audits all of them
	// but the excluded ones and those labelled stateguard.io/ignore=true.
	Namespace string
	Excluded  []string
}

// skipped reports whether the scope leaves namespace out.
func (s Scope) skipped(namespace string, ignored map[string]bool) bool {
	if s.Namespace != "" {
		return namespace != s.Namespace
	}
	return ignored[namespace] || slices.Contains(s.Excluded, namespace)
}

// judgedKinds are the API version and resource of each kind the audit
// judges: for sources, Events and PolicyReport results.
var judgedKinds = map[string]struct{ apiVersion, resource string }{
	"StatefulSet":             {"apps/v1", "statefulsets"},
	"Deployment":              {"apps/v1", "deployments"},
	"HorizontalPodAutoscaler": {"autoscaling/v2", "horizontalpodautoscalers"},
}

// apiPath is the source of a judged object: where `kubectl get --raw` finds it.
func apiPath(kind string, obj metav1.Object) string {
	k := judgedKinds[kind]
	return "/apis/" + k.apiVersion + "/namespaces/" + obj.GetNamespace() + "/" + k.resource + "/" + obj.GetName()
}

// inputs turns the objects in scope into the engine's input, workloads
// first in a stable order (kind, then namespace and name as listed).
func (o *Objects) inputs(scope Scope) []batch.Object {
	ignored := map[string]bool{}
	for _, ns := range o.Namespaces {
		if ns.Labels[LabelIgnore] == "true" {
			ignored[ns.Name] = true
		}
	}
	var objs []batch.Object
	add := func(kind string, obj metav1.Object) {
		if !scope.skipped(obj.GetNamespace(), ignored) {
			objs = append(objs, batch.Object{Source: apiPath(kind, obj), Kind: kind, Typed: obj})
		}
	}
	for _, x := range sorted(o.StatefulSets) {
		add("StatefulSet", x)
	}
	for _, x := range sorted(o.Deployments) {
		add("Deployment", x)
	}
	for _, x := range sorted(o.HPAs) {
		add("HorizontalPodAutoscaler", x)
	}
	// Lookups need no source: they are never reported.
	for _, x := range o.Services {
		objs = append(objs, batch.Object{Kind: "Service", Typed: x})
	}
	for _, x := range o.Claims {
		objs = append(objs, batch.Object{Kind: "PersistentVolumeClaim", Typed: x})
	}
	for _, x := range o.Namespaces {
		objs = append(objs, batch.Object{Kind: "Namespace", Typed: x})
	}
	return objs
}

// sorted orders objects by namespace and name: lists from a cache come in
// no particular order, and reports should not shuffle between runs.
func sorted[T metav1.Object](objs []T) []T {
	slices.SortFunc(objs, func(a, b T) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
	return objs
}

// Slim drops what judging never reads and what makes objects large: managed
// fields, the last-applied annotation (a copy of the whole manifest), and
// of the kinds the rules read, what engine.Trim drops.
func Slim(obj metav1.Object) {
	obj.SetManagedFields(nil)
	if a := obj.GetAnnotations(); a != nil {
		delete(a, engine.AnnotationLastAppliedConfiguration)
	}
	engine.Trim(obj)
}
