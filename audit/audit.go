// Package audit judges what already runs in a cluster with the engine:
// `stateguard audit` lists the objects from the API server, and the server's
// background audit reads them from its caches, records Events, metrics and
// PolicyReports. Both judge the same way `stateguard check` does.
package audit

import (
	"context"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/stateguard/stateguard/batch"
	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/lookup"
	"github.com/stateguard/stateguard/report"
)

// LabelIgnore on a namespace keeps stateguard out of it: the webhook
// configurations' namespaceSelector skips it, and so does the audit.
const LabelIgnore = "stateguard.io/ignore"

// DefaultExcludedNamespaces are never sent to the webhook, so an audit of
// all namespaces skips them too.
var DefaultExcludedNamespaces = []string{"kube-system", "kube-node-lease"}

// Objects are the objects of one audit, kept compactly: the workloads to
// judge, and the Services, claims, HPAs and Namespaces their rules look up.
type Objects struct {
	Store *lookup.Store
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

// judge judges the scope's StatefulSets and Deployments that workloads
// yields, then its HPAs from the store, looking up in the store, by kind,
// namespace and name, one object at a time. With byPath, the result also
// names each judged object's namespace, name and UID by its source.
func judge(ctx context.Context, eng *engine.Engine, store *lookup.Store, scope Scope, workloads func(*pass, func(batch.Object) bool) bool, byPath bool) (rep *report.Report, warnings []string, judged map[string]judgedObject, err error) {
	p := &pass{store: store, scaled: lookup.NewStore(), scope: scope, ignored: map[string]bool{}}
	if byPath {
		p.judged = map[string]judgedObject{}
	}
	for ns, err := range lookup.Each[*corev1.Namespace](store) {
		if err != nil {
			return nil, nil, nil, err
		}
		if ns.Labels[LabelIgnore] == "true" {
			p.ignored[ns.Name] = true
		}
	}
	rep, warnings, err = batch.JudgeEach(ctx, eng, func(yield func(batch.Object) bool) {
		_ = workloads(p, yield) && yieldStored[*autoscalingv2.HorizontalPodAutoscaler](p, "HorizontalPodAutoscaler", yield)
	}, passLookup{Store: store, scaled: p.scaled})
	if err == nil {
		err = p.err
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return rep, warnings, p.judged, nil
}

// judgedObject is what an Event or a PolicyReport result names of a
// judged object: a pass keeps one per workload, not its metadata.
type judgedObject struct {
	namespace, name string
	uid             types.UID
}

func (o judgedObject) GetNamespace() string { return o.namespace }
func (o judgedObject) GetName() string      { return o.name }
func (o judgedObject) GetUID() types.UID    { return o.uid }

// pass is what judge's walk over the objects keeps.
type pass struct {
	store   *lookup.Store
	scaled  *lookup.Store // the judged Deployments an HPA scales
	scope   Scope
	ignored map[string]bool
	judged  map[string]judgedObject // nil unless asked for
	err     error                   // the first object that could not be read
}

// passLookup looks up in the store, but Deployments among those the pass
// kept: neither the server nor the CLI keeps every Deployment, and an
// HPA's rule reads only the one it scales.
type passLookup struct {
	*lookup.Store
	scaled *lookup.Store
}

func (l passLookup) Deployment(ctx context.Context, namespace, name string) (*appsv1.Deployment, error) {
	return l.scaled.Deployment(ctx, namespace, name)
}

// take offers a listed workload, and keeps it first when it is a
// Deployment an HPA scales: the HPAs are judged after every workload.
func (p *pass) take(ctx context.Context, kind string, obj lookup.Stored, yield func(batch.Object) bool) error {
	if dep, ok := obj.(*appsv1.Deployment); ok {
		if hpas, _ := p.store.HorizontalPodAutoscalers(ctx, dep.Namespace, "Deployment", dep.Name); len(hpas) > 0 {
			if err := p.scaled.Put(dep); err != nil {
				return err
			}
		}
	}
	if !p.offer(kind, obj, yield) {
		return errStop
	}
	return nil
}

// offer yields obj when the scope holds it, and reports whether to go on.
func (p *pass) offer(kind string, obj lookup.Stored, yield func(batch.Object) bool) bool {
	if p.scope.skipped(obj.GetNamespace(), p.ignored) {
		return true
	}
	source := apiPath(kind, obj)
	if p.judged != nil {
		p.judged[source] = judgedObject{obj.GetNamespace(), obj.GetName(), obj.GetUID()}
	}
	return yield(batch.Object{Source: source, Kind: kind, Typed: obj})
}

// yieldStored offers the stored objects of kind T, and reports whether to
// go on.
func yieldStored[T lookup.Stored](p *pass, kind string, yield func(batch.Object) bool) bool {
	for obj, err := range lookup.Each[T](p.store) {
		if err != nil {
			p.err = err
			return false
		}
		if !p.offer(kind, obj, yield) {
			return false
		}
	}
	return true
}
