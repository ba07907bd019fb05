package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/stateguard/stateguard/batch"
	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/internal/slimlist"
	"github.com/stateguard/stateguard/lookup"
)

// Lists are read in pages, never in one response held whole by either
// side. Each page costs the API server time in proportion to all the
// objects of its kind, so pages of kubectl's 500 make a list's time grow
// with the square of the cluster's size: 59,000 Services took 10.3 s in
// pages of 500 and 3.9 s in pages of 5,000 from the same API server. The
// looked-up kinds, of which a cluster has the most, are read in the
// largest pages, one kind at a time; workloads, decoded at several KB
// each, in smaller ones. The server's background audit, which is in no
// hurry and is judged by its memory, reads workloads in pages of 500.
const (
	lookupPageSize             = 10000
	workloadPageSize           = 2000
	backgroundWorkloadPageSize = 500
)

// Progress is told the running count of listed objects, then that listing
// is done. A nil Progress reports nothing.
type Progress interface {
	Listed(n int64)
	Done()
}

// counter counts listed objects for a Progress.
type counter struct {
	n        atomic.Int64
	progress Progress
}

func (c *counter) add() {
	if n := c.n.Add(1); c.progress != nil && n%500 == 0 {
		c.progress.Listed(n)
	}
}

// lister lists one resource of a scope.
type lister struct {
	resource, namespace string // resource as RBAC names it; namespace "" is every namespace
	pageSize            int64
	client              rest.Interface // of the resource's API group and version
	plural              string
	decode              func([]byte) (runtime.Object, error)
}

// listerOf lists plural, of type T, with client.
func listerOf[T any, PT interface {
	*T
	runtime.Object
	Unmarshal([]byte) error
}](client rest.Interface, plural, group, namespace string, pageSize int64) lister {
	return lister{
		resource: strings.TrimSuffix(plural+"."+group, "."), namespace: namespace, pageSize: pageSize,
		client: client, plural: plural,
		decode: func(b []byte) (runtime.Object, error) {
			obj := PT(new(T))
			return obj, obj.Unmarshal(b)
		},
	}
}

// errStop ends a list early without an error of its own.
var errStop = errors.New("stopped")

// page is a page of a list's objects, or why it could not be read.
type page struct {
	objs []runtime.Object
	err  error
}

// each calls fn with each object, page by page, and names the resource
// and the scope when the list is refused. Pages are read as protobuf and
// pruned to what the rules read as they arrive, before their items are
// decoded (slimlist): decoding is most of what a list costs its reader.
func (l lister) each(ctx context.Context, c *counter, fn func(runtime.Object) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan page)
	go l.read(ctx, pages)
	for p := range pages {
		err := p.err
		for _, obj := range p.objs {
			if err != nil {
				break
			}
			c.add()
			err = fn(obj)
		}
		if errors.Is(err, errStop) {
			return err
		}
		if err != nil {
			return listError("list", l.resource, l.namespace, err)
		}
	}
	return ctx.Err()
}

// read sends the list's pages until the last or an error. Each page is
// read and decoded while the one before it is judged, and none is
// buffered beyond it.
func (l lister) read(ctx context.Context, pages chan<- page) {
	defer close(pages)
	opts := metav1.ListOptions{Limit: l.pageSize}
	for {
		var p page
		var meta metav1.ListMeta
		meta, p.err = slimlist.Get(ctx, l.client, l.namespace, l.plural, opts, func(item []byte) error {
			obj, err := l.decode(item)
			if err != nil {
				return fmt.Errorf("decoding an item: %w", err)
			}
			p.objs = append(p.objs, obj)
			return nil
		})
		if p.err != nil {
			p.objs = nil
		}
		select {
		case pages <- p:
		case <-ctx.Done():
			return
		}
		if p.err != nil || meta.Continue == "" {
			return
		}
		opts.Continue = meta.Continue
	}
}

// list reads what the rules look up from the API server into a Store:
// the scope's HPAs, Services and claims, and the Namespaces, in pages.
// Each object is kept compactly as it arrives.
func list(ctx context.Context, cs kubernetes.Interface, scope Scope, c *counter) (*Objects, error) {
	ns := scope.Namespace
	o := Objects{Store: lookup.NewStore()}
	listers := []lister{
		listerOf[autoscalingv2.HorizontalPodAutoscaler](cs.AutoscalingV2().RESTClient(), "horizontalpodautoscalers", "autoscaling", ns, lookupPageSize),
		listerOf[corev1.Service](cs.CoreV1().RESTClient(), "services", "", ns, lookupPageSize),
		listerOf[corev1.PersistentVolumeClaim](cs.CoreV1().RESTClient(), "persistentvolumeclaims", "", ns, lookupPageSize),
	}
	if ns == "" {
		listers = append(listers, listerOf[corev1.Namespace](cs.CoreV1().RESTClient(), "namespaces", "", "", lookupPageSize))
	}
	for _, l := range listers {
		if err := l.each(ctx, c, func(obj runtime.Object) error { return o.Store.Put(obj.(lookup.Stored)) }); err != nil {
			return nil, err
		}
	}
	if ns != "" {
		namespace, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		switch {
		case err == nil:
			if err := o.Store.Put(namespace); err != nil {
				return nil, err
			}
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("namespace %q not found", ns)
		case apierrors.IsForbidden(err):
			// Users whose rights end at their namespace can still audit it.
			o.Warnings = append(o.Warnings, fmt.Sprintf("cannot get namespace %q (forbidden): its %s annotation is not applied", ns, engine.AnnotationEnforcement))
		default:
			return nil, listError("get", "namespaces", "", err)
		}
	}
	return &o, nil
}

// listedWorkloads yields the scope's StatefulSets, then its Deployments,
// as the API server lists them, in pages of pageSize: none is kept once
// judged but the Deployments an HPA scales, which the HPA's rule looks
// up. The API server lists a kind by namespace and name, the order judge
// keeps.
func listedWorkloads(ctx context.Context, cs kubernetes.Interface, pageSize int64, c *counter) func(*pass, func(batch.Object) bool) bool {
	return func(p *pass, yield func(batch.Object) bool) bool {
		ns := p.scope.Namespace
		for _, l := range []struct {
			lister
			kind string
		}{
			{listerOf[appsv1.StatefulSet](cs.AppsV1().RESTClient(), "statefulsets", "apps", ns, pageSize), "StatefulSet"},
			{listerOf[appsv1.Deployment](cs.AppsV1().RESTClient(), "deployments", "apps", ns, pageSize), "Deployment"},
		} {
			err := l.each(ctx, c, func(obj runtime.Object) error { return p.take(ctx, l.kind, obj.(lookup.Stored), yield) })
			if err != nil {
				if !errors.Is(err, errStop) {
					p.err = err
				}
				return false
			}
		}
		return true
	}
}

// listError says what could not be read and, when RBAC refused it, which
// permission the identity lacks. namespace "" is every namespace.
func listError(verb, resource, namespace string, err error) error {
	where := "in all namespaces"
	switch {
	case resource == "namespaces":
		where = "(cluster-scoped)"
	case namespace != "":
		where = fmt.Sprintf("in namespace %q", namespace)
	}
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("cannot %s %s %s: %w\nstateguard audit needs %q on %s %s (the chart's ClusterRole grants it)", verb, resource, where, err, verb, resource, where)
	}
	return fmt.Errorf("cannot %s %s %s: %w", verb, resource, where, err)
}

// TerminalProgress is a progress line on w, rewritten in place at most
// every 200ms and cleared when listing is done.
func TerminalProgress(w io.Writer) Progress { return &terminalProgress{w: w} }

type terminalProgress struct {
	w    io.Writer
	mu   sync.Mutex
	last time.Time
}

func (p *terminalProgress) Listed(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "\rlisting: %d objects read", n)
}

func (p *terminalProgress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.last.IsZero() {
		fmt.Fprint(p.w, "\r"+strings.Repeat(" ", 40)+"\r")
	}
}

// InstalledExclusions reads the namespaces an installed stateguard never
// judges from its ValidatingWebhookConfiguration (the one whose webhooks are
// named *.stateguard.io): the NotIn values of its kubernetes.io/metadata.name
// selector. It returns the configuration's name, or "" when none is installed.
func InstalledExclusions(ctx context.Context, cs kubernetes.Interface) (namespaces []string, configuration string, err error) {
	list, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, "", err
	}
	for _, c := range list.Items {
		for _, w := range c.Webhooks {
			if !strings.HasSuffix(w.Name, ".stateguard.io") || w.NamespaceSelector == nil {
				continue
			}
			for _, e := range w.NamespaceSelector.MatchExpressions {
				if e.Key == corev1.LabelMetadataName && e.Operator == metav1.LabelSelectorOpNotIn {
					for _, ns := range e.Values {
						if !slices.Contains(namespaces, ns) {
							namespaces = append(namespaces, ns)
						}
					}
				}
			}
			configuration = c.Name
		}
		if configuration != "" {
			return namespaces, configuration, nil
		}
	}
	return nil, "", nil
}
