package audit

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	polv1alpha2 "github.com/kyverno/kyverno/api/policyreport/v1alpha2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	fakediscovery "k8s.io/client-go/discovery/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlfake "sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/stateguard/stateguard/batch"
	"github.com/stateguard/stateguard/config"
	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/lookup"
	"github.com/stateguard/stateguard/report"
	"github.com/stateguard/stateguard/test/manifests"
)

// orphan is a StatefulSet whose headless Service does not exist.
func orphan(ns, name string, annotations map[string]string) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + ns + "-" + name), Annotations: annotations},
		Spec: appsv1.StatefulSetSpec{
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}},
			},
		},
	}
}

func ns(name string, labels, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
}

// objects are the objects of an audit.
func objects(t *testing.T, objs ...lookup.Stored) *Objects {
	t.Helper()
	o := &Objects{Store: lookup.NewStore()}
	for _, obj := range objs {
		if err := o.Store.Put(obj); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

// storedWorkloads yields the StatefulSets and Deployments of the test's
// store as if listed.
func storedWorkloads(p *pass, yield func(batch.Object) bool) bool {
	return takeStored[*appsv1.StatefulSet](p, "StatefulSet", yield) && takeStored[*appsv1.Deployment](p, "Deployment", yield)
}

func takeStored[T lookup.Stored](p *pass, kind string, yield func(batch.Object) bool) bool {
	for obj, err := range lookup.Each[T](p.store) {
		if err != nil {
			p.err = err
			return false
		}
		if err := p.take(context.Background(), kind, obj, yield); err != nil {
			if !errors.Is(err, errStop) {
				p.err = err
			}
			return false
		}
	}
	return true
}

// judged summarises a judgement as "source rule action" lines.
func judged(t *testing.T, objs *Objects, scope Scope) []string {
	t.Helper()
	rep, _, _, err := judge(context.Background(), engine.New(config.Default().Settings()), objs.Store, scope, storedWorkloads, false)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, r := range rep.Results {
		lines = append(lines, r.Source+" "+r.Rule+" "+string(r.Action))
	}
	return lines
}

func TestScope(t *testing.T) {
	objs := func() *Objects {
		return objects(t,
			orphan("shop", "b", nil), orphan("shop", "a", nil), orphan("kube-system", "k", nil),
			orphan("hidden", "h", nil), orphan("quiet", "q", nil),
			ns("shop", nil, nil), ns("kube-system", nil, nil),
			ns("hidden", map[string]string{LabelIgnore: "true"}, nil),
			ns("quiet", nil, map[string]string{engine.AnnotationEnforcement: "dryrun"}),
		)
	}
	for _, tt := range []struct {
		name  string
		scope Scope
		want  []string
	}{
		{
			name:  "all namespaces but the excluded and ignored ones, sorted",
			scope: Scope{Excluded: DefaultExcludedNamespaces},
			want: []string{
				"/apis/apps/v1/namespaces/quiet/statefulsets/q statefulset-headless-service dryrun",
				"/apis/apps/v1/namespaces/shop/statefulsets/a statefulset-headless-service deny",
				"/apis/apps/v1/namespaces/shop/statefulsets/b statefulset-headless-service deny",
			},
		},
		{
			name:  "a namespace named with -n is judged even when excluded",
			scope: Scope{Namespace: "kube-system", Excluded: DefaultExcludedNamespaces},
			want:  []string{"/apis/apps/v1/namespaces/kube-system/statefulsets/k statefulset-headless-service deny"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, judged(t, objs(), tt.scope)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// exemptingEngine exempts shop/cache from every rule, besides the
// configuration extra.
func exemptingEngine(t *testing.T, extra string) *engine.Engine {
	t.Helper()
	cfg, err := config.Parse([]byte("apiVersion: stateguard.io/v1alpha1\nkind: Config\n" + extra +
		"exemptions: [{name: cache, namespaces: [shop], names: [cache], rules: [all], reason: a throw-away cache}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(cfg.Settings())
}

// TestNoPassBeforeTheStoreSynced: a StatefulSet listed before its Service
// is stored must not be reported; the first pass waits for every kind.
func TestNoPassBeforeTheStoreSynced(t *testing.T) {
	client := fake.NewClientset(orphan("shop", "db", nil))
	var synced atomic.Bool
	b := &Background{
		Store: objects(t).Store, Workloads: served(t, client), Synced: synced.Load, Interval: time.Hour,
		Engine: func() *engine.Engine { return engine.New(config.Default().Settings()) },
		Events: client.CoreV1(), Ledger: &Ledger{ConfigMaps: client.CoreV1(), Namespace: "stateguard-system", Name: "stateguard-audit"},
		Metrics: NewMetrics(prometheus.NewRegistry()), Log: logr.Discard(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- b.Start(ctx) }()
	time.Sleep(300 * time.Millisecond)
	if got := testutil.ToFloat64(b.Metrics.LastRun); got != 0 {
		t.Fatalf("a pass ran before the store synced (last run %v)", got)
	}
	synced.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(b.Metrics.LastRun) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no pass within 5s of the store syncing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if events, _ := client.CoreV1().Events("shop").List(context.Background(), metav1.ListOptions{}); len(events.Items) != 1 {
		t.Errorf("%d Events after the first pass, want 1", len(events.Items))
	}
}

// TestEvents: one Event per distinct violation, none for exemptions, none
// again on the next pass, after a restart, or after a restart once the
// Event has expired; a new one for a new violation.
func TestEvents(t *testing.T) {
	client := fake.NewClientset()
	ledger := func() *Ledger {
		return &Ledger{ConfigMaps: client.CoreV1(), Namespace: "stateguard-system", Name: "stateguard-audit"}
	}
	// start is Start without its loop: a fresh server.
	start := func() *Background {
		b := &Background{
			Engine: func() *engine.Engine { return exemptingEngine(t, "") },
			Events: client.CoreV1(), Ledger: ledger(), Metrics: NewMetrics(prometheus.NewRegistry()), Log: logr.Discard(),
		}
		emitted, err := b.Ledger.Load(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		b.emitted = emitted
		return b
	}
	objs := objects(t, orphan("shop", "db", nil), orphan("shop", "cache", nil))
	pass := func(b *Background) int {
		rep, _, judgedObjs, err := judge(context.Background(), b.Engine(), objs.Store, Scope{}, storedWorkloads, true)
		if err != nil {
			t.Fatal(err)
		}
		b.Metrics.observe(rep)
		n := b.recordEvents(context.Background(), rep, judgedObjs)
		if err := b.Ledger.Save(context.Background(), b.emitted); err != nil {
			t.Fatal(err)
		}
		return n
	}
	events := func() []corev1.Event {
		list, err := client.CoreV1().Events("shop").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	b := start()
	if n := pass(b); n != 1 {
		t.Fatalf("first pass created %d Events, want 1 (the exempt object gets none)", n)
	}
	if got := testutil.ToFloat64(b.Metrics.Violations.WithLabelValues(engine.RuleHeadlessService, "shop", "exempt")); got != 1 {
		t.Errorf("exempt violations gauge = %v, want 1", got)
	}
	if n := pass(b); n != 0 {
		t.Errorf("second pass created %d Events, want 0", n)
	}
	ev := events()[0]
	if len(events()) != 1 || ev.InvolvedObject.UID != "uid-shop-db" || ev.Reason != EventReason || ev.Type != corev1.EventTypeWarning {
		t.Fatalf("Events: %+v", events())
	}
	if n := pass(start()); n != 0 {
		t.Errorf("after a restart the pass created %d Events, want 0", n)
	}
	// The API server drops the Event (--event-ttl); the ledger remembers.
	if err := client.CoreV1().Events("shop").Delete(context.Background(), ev.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	b = start()
	if n := pass(b); n != 0 || len(events()) != 0 {
		t.Errorf("after the Event expired and a restart: %d Events created, want 0", n)
	}
	// A new action (dryrun enforced as deny) is no new violation.
	b.Engine = func() *engine.Engine { return exemptingEngine(t, "enforcement: dryrun\n") }
	if n := pass(b); n != 0 {
		t.Errorf("a pass under another enforcement created %d Events, want 0", n)
	}
	db := orphan("shop", "db", nil)
	db.Spec.ServiceName = "other"
	if err := objs.Store.Put(db); err != nil {
		t.Fatal(err)
	}
	if n := pass(b); n != 1 {
		t.Errorf("a changed violation created %d Events, want 1", n)
	}
	cm, err := client.CoreV1().ConfigMaps("stateguard-system").Get(context.Background(), "stateguard-audit", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(cm.Data["violations"]); len(got) != 1 {
		t.Errorf("the ledger holds %q, want the one current violation", got)
	}
}

func TestEventNameFitsTheLimit(t *testing.T) {
	long := judgedObject{namespace: "shop", uid: "uid-long"}
	for range 25 {
		long.name += "abcdefghi-"
	}
	name := eventName(long, violationDigest(long, report.Entry{Rule: "r"}))
	if len(name) > 253 || name[len(name)-18] == '-' {
		t.Errorf("event name %q (%d characters)", name, len(name))
	}
}

// onePerPage lists one object a page, as an API server honours a limit,
// which the fake client ignores.
type onePerPage struct {
	client.Client
	pages int
}

func (p *onePerPage) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	p.pages++
	if err := p.Client.List(ctx, list, opts...); err != nil {
		return err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return err
	}
	start, _ := strconv.Atoi((&client.ListOptions{}).ApplyOptions(opts).Continue)
	end := min(start+1, len(items))
	list.SetContinue("")
	if end < len(items) {
		list.SetContinue(strconv.Itoa(end))
	}
	return meta.SetList(list, items[min(start, end):end])
}

// TestPolicyReports: a report per namespace with results, results mapped
// to the PolicyReport vocabulary, unchanged reports not rewritten, and a
// fixed namespace's report emptied in place; the existing reports are
// read a page at a time.
func TestPolicyReports(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := polv1alpha2.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := ctrlfake.NewClientBuilder().WithScheme(scheme).Build()
	disco := &fakediscovery.FakeDiscovery{Fake: &fake.NewClientset().Fake}
	disco.Resources = []*metav1.APIResourceList{{GroupVersion: "wgpolicyk8s.io/v1alpha2", APIResources: []metav1.APIResource{{Name: "policyreports", Namespaced: true, Kind: "PolicyReport"}}}}
	reader := &onePerPage{Client: c}
	r := &Reports{Client: c, Reader: reader, Discovery: disco, Log: logr.Discard(), PassResults: true}
	eng := exemptingEngine(t, "rules: {statefulset-emptydir-data: {action: warn}}\n")
	objs := objects(t,
		orphan("shop", "db", nil), orphan("shop", "cache", nil), orphan("lab", "trial", nil),
		ns("lab", nil, map[string]string{engine.AnnotationEnforcement: "dryrun"}),
	)
	write := func() {
		t.Helper()
		rep, _, judgedObjs, err := judge(context.Background(), eng, objs.Store, Scope{}, storedWorkloads, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Write(context.Background(), rep, judgedObjs, eng.Enabled); err != nil {
			t.Fatal(err)
		}
	}
	get := func(namespace string) *polv1alpha2.PolicyReport {
		t.Helper()
		polr := &polv1alpha2.PolicyReport{}
		if err := c.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: ReportName}, polr); err != nil {
			t.Fatal(err)
		}
		return polr
	}
	summary := func(polr *polv1alpha2.PolicyReport) []string {
		var out []string
		for _, res := range polr.Results {
			if res.Policy != ReportPolicy || res.Source != "stateguard" {
				t.Errorf("result of policy %q, source %q: want both stateguard", res.Policy, res.Source)
			}
			out = append(out, res.Resources[0].Name+" "+res.Rule+" "+string(res.Result)+" "+res.Properties["action"])
		}
		return out
	}
	write()
	shop := get("shop")
	// Violations first, then a pass for each rule a workload complies with.
	want := []string{
		"db statefulset-headless-service fail deny",
		"cache statefulset-headless-service skip exempt",
		"cache data-directory-unmounted pass ",
		"cache statefulset-emptydir-data pass ",
		"cache statefulset-shared-rwo-pvc pass ",
		"db data-directory-unmounted pass ",
		"db statefulset-emptydir-data pass ",
		"db statefulset-shared-rwo-pvc pass ",
	}
	if diff := cmp.Diff(want, summary(shop)); diff != "" {
		t.Errorf("shop (-want +got):\n%s", diff)
	}
	if shop.Summary != (polv1alpha2.PolicyReportSummary{Fail: 1, Skip: 1, Pass: 6}) {
		t.Errorf("shop summary %+v", shop.Summary)
	}
	if got := shop.Results[1].Properties["exemption"]; got != `exemption "cache": a throw-away cache` {
		t.Errorf("the skipped result's exemption property is %q, want the exemption and its reason", got)
	}
	// In a dryrun namespace the result is what enforcing would make it.
	want = []string{"trial statefulset-headless-service fail dryrun", "trial data-directory-unmounted pass ", "trial statefulset-emptydir-data pass ", "trial statefulset-shared-rwo-pvc pass "}
	if diff := cmp.Diff(want, summary(get("lab"))); diff != "" {
		t.Errorf("lab (-want +got):\n%s", diff)
	}

	reader.pages = 0
	write()
	if reader.pages != 2 {
		t.Errorf("the two reports were read in %d pages, want 2 of one", reader.pages)
	}
	if again := get("shop"); again.ResourceVersion != shop.ResourceVersion {
		t.Errorf("an unchanged report was rewritten: resourceVersion %s -> %s", shop.ResourceVersion, again.ResourceVersion)
	}

	// Without pass results (a large cluster), the violations alone.
	r.PassResults = false
	write()
	if diff := cmp.Diff(want[:1], summary(get("lab"))); diff != "" {
		t.Errorf("lab without pass results (-want +got):\n%s", diff)
	}

	statefulSets, err := objs.Store.Feed(&appsv1.StatefulSet{})
	if err != nil {
		t.Fatal(err)
	}
	if err := statefulSets.Delete(orphan("lab", "trial", nil)); err != nil {
		t.Fatal(err)
	}
	write()
	if lab := get("lab"); len(lab.Results) != 0 || lab.Summary != (polv1alpha2.PolicyReportSummary{}) {
		t.Errorf("the fixed namespace's report still holds %+v", lab)
	}
}

// TestListAndJudge: the CLI lists what the rules look up, then judges the
// workloads of the scope as they are listed; a Deployment an HPA scales is
// kept for the HPA's rule. A refused list names the permission.
func TestListAndJudge(t *testing.T) {
	inShop := func(obj lookup.Stored) runtime.Object {
		obj.SetNamespace("shop")
		return obj
	}
	scaler := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MaxReplicas:    5,
		},
	}
	client := fake.NewClientset(orphan("shop", "db", nil), orphan("lab", "trial", nil), ns("shop", nil, nil),
		inShop(manifests.Deployment("web")), inShop(manifests.Claim("web")), scaler,
		inShop(manifests.Deployment("solo")), inShop(manifests.Claim("solo")))
	rep, _, err := listAndJudge(context.Background(), engine.New(config.Default().Settings()), served(t, client), Scope{Namespace: "shop"}, &counter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rep.Results {
		got = append(got, r.Source+" "+r.Rule+" "+string(r.Action))
	}
	want := []string{
		"/apis/apps/v1/namespaces/shop/statefulsets/db statefulset-headless-service deny",
		"/apis/apps/v1/namespaces/shop/deployments/web deployment-shared-rwo-pvc deny",
		"/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/web deployment-shared-rwo-pvc deny",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if rep.Objects != 4 {
		t.Errorf("%d objects judged, want 4: a StatefulSet, two Deployments and an HPA", rep.Objects)
	}

	client.PrependReactor("list", "statefulsets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "statefulsets"}, "", errors.New(`User "u" cannot list resource "statefulsets"`))
	})
	_, _, err = listAndJudge(context.Background(), engine.New(config.Default().Settings()), served(t, client), Scope{}, &counter{})
	want1 := `cannot list statefulsets.apps in all namespaces: statefulsets.apps is forbidden: User "u" cannot list resource "statefulsets"` +
		"\nstateguard audit needs \"list\" on statefulsets.apps in all namespaces (the chart's ClusterRole grants it)"
	if err == nil || err.Error() != want1 {
		t.Errorf("error %v\nwant %s", err, want1)
	}
}

// TestTerminalProgress: the count is rewritten in place, at most every
// 200ms, and the line is cleared before the report is printed.
func TestTerminalProgress(t *testing.T) {
	var out strings.Builder
	p := TerminalProgress(&out)
	p.Listed(500)
	p.Listed(1000) // within 200ms of the last line: skipped
	p.Done()
	want := "\rlisting: 500 objects read\r" + strings.Repeat(" ", 40) + "\r"
	if out.String() != want {
		t.Errorf("wrote %q, want %q", out.String(), want)
	}
	var quiet strings.Builder
	TerminalProgress(&quiet).Done()
	if quiet.Len() != 0 {
		t.Errorf("a progress that never printed wrote %q when done", quiet.String())
	}
}

// TestMetrics: nothing is exported before a pass (a standby replica), and
// the series of a fixed violation disappears.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("before a pass: %d series (%v), want none", n, err)
	}
	eng := engine.New(config.Default().Settings())
	objs := objects(t, orphan("shop", "db", nil), orphan("lab", "trial", nil))
	rep, _, _, err := judge(context.Background(), eng, objs.Store, Scope{}, storedWorkloads, false)
	if err != nil {
		t.Fatal(err)
	}
	m.observe(rep)
	if n := testutil.CollectAndCount(m.Violations); n != 2 {
		t.Errorf("%d violation series, want 2", n)
	}
	statefulSets, err := objs.Store.Feed(&appsv1.StatefulSet{})
	if err != nil {
		t.Fatal(err)
	}
	if err := statefulSets.Replace(nil, ""); err != nil {
		t.Fatal(err)
	}
	rep, _, _, err = judge(context.Background(), eng, objs.Store, Scope{}, storedWorkloads, false)
	if err != nil {
		t.Fatal(err)
	}
	m.observe(rep)
	if n := testutil.CollectAndCount(m.Violations); n != 0 {
		t.Errorf("after the fix: %d violation series, want none", n)
	}
}

// TestEventFailures: a refused create is logged once per pass, not once
// per Event, and retried by the next pass.
func TestEventFailures(t *testing.T) {
	client := fake.NewClientset()
	refuse := true
	client.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		if refuse {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "events"}, "", errors.New("no"))
		}
		return false, nil, nil
	})
	var logged []string
	b := &Background{
		Engine: func() *engine.Engine { return engine.New(config.Default().Settings()) }, Events: client.CoreV1(),
		Metrics: NewMetrics(prometheus.NewRegistry()), emitted: map[string]bool{},
		Log: funcr.New(func(_, args string) { logged = append(logged, args) }, funcr.Options{}),
	}
	objs := objects(t, orphan("shop", "a", nil), orphan("shop", "b", nil))
	pass := func() int {
		rep, _, judgedObjs, err := judge(context.Background(), b.Engine(), objs.Store, Scope{}, storedWorkloads, true)
		if err != nil {
			t.Fatal(err)
		}
		return b.recordEvents(context.Background(), rep, judgedObjs)
	}
	if n := pass(); n != 0 || len(logged) != 1 || !strings.Contains(logged[0], `"failed"=2`) {
		t.Errorf("refused: created %d, logged %q: want 0 and one line counting 2 failures", n, logged)
	}
	refuse = false
	if n := pass(); n != 2 {
		t.Errorf("the next pass created %d Events, want 2", n)
	}
}
