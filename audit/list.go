package audit

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/pager"

	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/lookup"
)

// pageSize is how many objects one list request returns: large clusters
// are read in pages rather than in one response held whole by the server.
const pageSize = 500

// Progress is told the running count of listed objects, then that listing
// is done. A nil Progress reports nothing.
type Progress interface {
	Listed(n int64)
	Done()
}

// List reads the objects of the scope from the API server, in pages, the
// kinds concurrently, into a Store: each object is kept compactly as it
// arrives. A refused list names the resource and the scope.
func List(ctx context.Context, cs kubernetes.Interface, scope Scope, progress Progress) (*Objects, error) {
	ns := scope.Namespace // "" lists all namespaces
	var (
		o      = Objects{Store: lookup.NewStore()}
		listed atomic.Int64
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []error
	)
	run := func(resource string, list func(metav1.ListOptions) (runtime.Object, error)) {
		wg.Go(func() {
			p := pager.New(pager.SimplePageFunc(list))
			p.PageSize = pageSize
			err := p.EachListItem(ctx, metav1.ListOptions{}, func(obj runtime.Object) error {
				if err := o.Store.Put(obj.(lookup.Stored)); err != nil {
					return err
				}
				if n := listed.Add(1); progress != nil && n%pageSize == 0 {
					progress.Listed(n)
				}
				return nil
			})
			if err != nil {
				mu.Lock()
				errs = append(errs, listError("list", resource, ns, err))
				mu.Unlock()
			}
		})
	}
	run("statefulsets.apps", func(opts metav1.ListOptions) (runtime.Object, error) {
		return cs.AppsV1().StatefulSets(ns).List(ctx, opts)
	})
	run("deployments.apps", func(opts metav1.ListOptions) (runtime.Object, error) {
		return cs.AppsV1().Deployments(ns).List(ctx, opts)
	})
	run("horizontalpodautoscalers.autoscaling", func(opts metav1.ListOptions) (runtime.Object, error) {
		return cs.AutoscalingV2().HorizontalPodAutoscalers(ns).List(ctx, opts)
	})
	run("services", func(opts metav1.ListOptions) (runtime.Object, error) {
		return cs.CoreV1().Services(ns).List(ctx, opts)
	})
	run("persistentvolumeclaims", func(opts metav1.ListOptions) (runtime.Object, error) {
		return cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, opts)
	})
	if ns == "" {
		run("namespaces", func(opts metav1.ListOptions) (runtime.Object, error) {
			return cs.CoreV1().Namespaces().List(ctx, opts)
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errs[0]
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
