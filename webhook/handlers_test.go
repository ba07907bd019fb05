package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/stateguard/stateguard/config"
	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/lookup"
)

// testServer is the webhook's handlers around an in-memory lookup of objs
// (also readable through the live client), with the policy cfg ("" for the
// built-in one).
type testServer struct {
	handlers map[string]http.Handler
	opts     Options
	metrics  *Metrics
}

func newTestServer(tb testing.TB, cfg string, objs ...runtime.Object) *testServer {
	return newTestServerWith(tb, cfg, nil, objs...)
}

// newTestServerWith lets edit change the handlers' options first.
func newTestServerWith(tb testing.TB, cfg string, edit func(*Options), objs ...runtime.Object) *testServer {
	tb.Helper()
	policy := config.Default()
	if cfg != "" {
		var err error
		if policy, err = config.Parse([]byte(cfg)); err != nil {
			tb.Fatal(err)
		}
	}
	eng := engine.New(policy.Settings())
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		tb.Fatal(err)
	}
	index := lookup.NewStore()
	for _, obj := range objs {
		if stored, ok := obj.DeepCopyObject().(lookup.Stored); ok {
			if err := index.Put(stored); err != nil {
				tb.Fatal(err)
			}
		}
	}
	opts := Options{
		Engine:  func() *engine.Engine { return eng },
		Lookup:  index,
		Live:    fake.NewClientBuilder().WithScheme(scheme).WithRuntimeObjects(objs...).Build(),
		Metrics: NewMetrics(prometheus.NewRegistry()),
		Log:     logr.Discard(),
	}
	if edit != nil {
		edit(&opts)
	}
	return &testServer{handlers: Handlers(opts), opts: opts, metrics: opts.Metrics}
}

// post sends body to path and returns the HTTP status and the decoded review.
func (s *testServer) post(tb testing.TB, path string, body []byte) (int, *admissionv1.AdmissionReview) {
	tb.Helper()
	rec := httptest.NewRecorder()
	s.handlers[path].ServeHTTP(rec, newReviewRequest(path, body))
	review := &admissionv1.AdmissionReview{}
	if err := json.Unmarshal(rec.Body.Bytes(), review); err != nil {
		tb.Fatalf("%s: answer is not an AdmissionReview: %v\n%s", path, err, rec.Body.String())
	}
	return rec.Code, review
}

func newReviewRequest(path string, body []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

// reviewOf is the AdmissionReview the API server sends for a write of obj.
func reviewOf(tb testing.TB, op admissionv1.Operation, kind metav1.GroupVersionKind, resource string, obj, old runtime.Object) []byte {
	tb.Helper()
	raw := func(o runtime.Object) runtime.RawExtension {
		if o == nil {
			return runtime.RawExtension{}
		}
		b, err := json.Marshal(o)
		if err != nil {
			tb.Fatal(err)
		}
		return runtime.RawExtension{Raw: b}
	}
	meta := obj.(metav1.Object)
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("7d0c7c4e-1d2b-4c53-9a51-" + meta.GetName()),
			Kind:      kind,
			Resource:  metav1.GroupVersionResource{Group: kind.Group, Version: kind.Version, Resource: resource},
			Name:      meta.GetName(),
			Namespace: meta.GetNamespace(),
			Operation: op,
			UserInfo:  authenticationUser,
			Object:    raw(obj),
			OldObject: raw(old),
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

var statefulSetKind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}

// postgres is a StatefulSet as a database chart renders it, after the API
// server's defaulting: probes, resources, a security context, a scratch
// emptyDir at /tmp, shared memory, a claim template for the data, the
// last-applied annotation and the managed fields of kubectl apply.
func postgres(namespace string) *appsv1.StatefulSet {
	labels := map[string]string{"app.kubernetes.io/name": "postgresql", "app.kubernetes.io/instance": "orders", "app.kubernetes.io/component": "primary"}
	probe := &corev1.Probe{
		ProbeHandler:        corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/sh", "-c", "exec pg_isready -U postgres -h 127.0.0.1 -p 5432"}}},
		InitialDelaySeconds: 30, PeriodSeconds: 10, TimeoutSeconds: 5, SuccessThreshold: 1, FailureThreshold: 6,
	}
	sts := &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: metav1.ObjectMeta{Name: "orders-postgresql", Namespace: namespace, Labels: labels},
		Spec: appsv1.StatefulSetSpec{
			Replicas:       ptr(int32(1)),
			ServiceName:    "orders-postgresql-hl",
			Selector:       &metav1.LabelSelector{MatchLabels: labels},
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SecurityContext: &corev1.PodSecurityContext{FSGroup: ptr(int64(1001)), RunAsUser: ptr(int64(1001)), RunAsNonRoot: ptr(true)},
					Containers: []corev1.Container{{
						Name:  "postgresql",
						Image: "registry.example.com/postgresql:17.2.0",
						Ports: []corev1.ContainerPort{{Name: "tcp-postgresql", ContainerPort: 5432, Protocol: corev1.ProtocolTCP}},
						Env: []corev1.EnvVar{
							{Name: "POSTGRESQL_PORT_NUMBER", Value: "5432"},
							{Name: "PGDATA", Value: "/bitnami/postgresql/data"},
							{Name: "POSTGRES_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "orders-postgresql"}, Key: "postgres-password"}}},
						},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
						},
						LivenessProbe:  probe,
						ReadinessProbe: probe,
						VolumeMounts: []corev1.VolumeMount{
							{Name: "empty-dir", MountPath: "/tmp", SubPath: "tmp-dir"},
							{Name: "dshm", MountPath: "/dev/shm"},
							{Name: "data", MountPath: "/bitnami/postgresql"},
						},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "empty-dir", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
						{Name: "dshm", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
					},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("8Gi")}},
				},
			}},
		},
	}
	// The manifest as applied, then the fields the API server defaults.
	applied, _ := json.Marshal(sts)
	sts.Annotations = map[string]string{corev1.LastAppliedConfigAnnotation: string(applied)}
	sts.Spec.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	sts.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType, WhenScaled: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
	}
	sts.ManagedFields = []metav1.ManagedFieldsEntry{{
		Manager: "kubectl-client-side-apply", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "apps/v1", FieldsType: "FieldsV1",
		FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},"f:labels":{}},"f:spec":{"f:replicas":{},"f:selector":{},"f:serviceName":{},"f:template":{},"f:volumeClaimTemplates":{}}}`)},
	}}
	return sts
}

func headlessFor(sts *appsv1.StatefulSet) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: sts.Spec.ServiceName, Namespace: sts.Namespace},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: sts.Spec.Template.Labels},
	}
}

func namespaceObj(name string, annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations}}
}

func TestStatefulSetReviews(t *testing.T) {
	db := postgres("shop")
	for _, tt := range []struct {
		name     string
		cfg      string
		objs     []runtime.Object
		want     admissionv1.AdmissionResponse
		wantCode int
	}{
		{
			name: "compliant", objs: []runtime.Object{namespaceObj("shop", nil), headlessFor(db)},
			want: admissionv1.AdmissionResponse{Allowed: true, Result: &metav1.Status{Code: http.StatusOK}},
		},
		{
			name: "a missing Service is denied with the rule, field and fix", objs: []runtime.Object{namespaceObj("shop", nil)},
			want: admissionv1.AdmissionResponse{Result: &metav1.Status{Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden, Message: `StatefulSet "orders-postgresql" violates 1 stateguard rule:
statefulset-headless-service: spec.serviceName: Service "orders-postgresql-hl" not found in namespace "shop", so the Pods get no stable DNS names: create a headless Service (clusterIP: None) named "orders-postgresql-hl" whose selector matches spec.template.metadata.labels, or set spec.serviceName to an existing one; if the Pods need no stable DNS names, ask the platform team for an exemption from statefulset-headless-service in stateguard's policy`}},
		},
		{
			name: "the namespace annotation turns the denial into a warning",
			objs: []runtime.Object{namespaceObj("shop", map[string]string{"stateguard.io/enforcement": "warn"})},
			want: admissionv1.AdmissionResponse{Allowed: true, Result: &metav1.Status{Code: http.StatusOK}, Warnings: []string{
				`statefulset-headless-service: spec.serviceName: Service "orders-postgresql-hl" not found in namespace "shop", so the Pods get no stable DNS names: create a headless Service (clusterIP: None) named "orders-postgresql-hl" whose selector matches spec.template.metadata.labels, or set spec.serviceName to an existing one; if the Pods need no stable DNS names, ask the platform team for an exemption from statefulset-headless-service in stateguard's policy`,
			}},
		},
		{
			name: "dryrun neither denies nor warns", cfg: "apiVersion: stateguard.io/v1alpha1\nkind: Config\nenforcement: dryrun\n",
			objs: []runtime.Object{namespaceObj("shop", nil)},
			want: admissionv1.AdmissionResponse{Allowed: true, Result: &metav1.Status{Code: http.StatusOK}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, tt.cfg, tt.objs...)
			code, review := s.post(t, PathValidateStatefulSet, reviewOf(t, admissionv1.Create, statefulSetKind, "statefulsets", db, nil))
			if code != http.StatusOK {
				t.Errorf("HTTP %d, want 200", code)
			}
			tt.want.UID = types.UID("7d0c7c4e-1d2b-4c53-9a51-orders-postgresql")
			if diff := cmp.Diff(&tt.want, review.Response); diff != "" {
				t.Errorf("response (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecisionsAreCountedAndLogged: an enforced denial is counted as
// such (not as a dryrun observation) and logged at info with who was
// refused, the rules and the message.
func TestDecisionsAreCountedAndLogged(t *testing.T) {
	var logged []string
	s := newTestServerWith(t, "", func(o *Options) {
		o.Log = funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{})
	}, namespaceObj("shop", nil))
	body := reviewOf(t, admissionv1.Create, statefulSetKind, "statefulsets", postgres("shop"), nil)
	s.post(t, PathValidateStatefulSet, body)
	s.post(t, PathValidateStatefulSet, body)
	if got := testutil.ToFloat64(s.metrics.Decisions.WithLabelValues("statefulset-headless-service", "deny", ModeEnforce, "CREATE", "StatefulSet")); got != 2 {
		t.Errorf("stateguard_admission_decisions_total{rule=statefulset-headless-service,action=deny,mode=enforce} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(s.metrics.Decisions.WithLabelValues("statefulset-headless-service", "deny", ModeDryRun, "CREATE", "StatefulSet")); got != 0 {
		t.Errorf("an enforced denial counted as a dryrun one: %v", got)
	}
	want := `"level"=0 "msg"="denied" "kind"="StatefulSet" "namespace"="shop" "name"="orders-postgresql" "operation"="CREATE" ` +
		`"requester"="` + authenticationUser.Username + `" "rules"=["statefulset-headless-service"] "dryRunRequest"=false ` +
		`"message"="StatefulSet \"orders-postgresql\" violates 1 stateguard rule:\nstatefulset-headless-service: spec.serviceName: Service`
	if len(logged) != 2 || !strings.HasPrefix(logged[0], want) {
		t.Errorf("logged %q, want two lines starting %q", logged, want)
	}
}

// TestDryRunIsSilentButRecorded: in dryrun nothing reaches the requester,
// not even the warning about a mistyped exemption, while each would-be
// violation is logged with the action it would have had and counted.
func TestDryRunIsSilentButRecorded(t *testing.T) {
	var logged []string
	s := newTestServerWith(t, "apiVersion: stateguard.io/v1alpha1\nkind: Config\nenforcement: dryrun\n", func(o *Options) {
		o.Log = funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{})
	}, namespaceObj("shop", nil))
	db := postgres("shop")
	db.Annotations["stateguard.io/exempt"] = "statefulset-headless"
	_, review := s.post(t, PathValidateStatefulSet, reviewOf(t, admissionv1.Create, statefulSetKind, "statefulsets", db, nil))
	if !review.Response.Allowed || len(review.Response.Warnings) > 0 {
		t.Errorf("allowed %v, warnings %q: want allowed without warnings", review.Response.Allowed, review.Response.Warnings)
	}
	if got := testutil.ToFloat64(s.metrics.Decisions.WithLabelValues("statefulset-headless-service", "deny", ModeDryRun, "CREATE", "StatefulSet")); got != 1 {
		t.Errorf("stateguard_admission_decisions_total{rule=statefulset-headless-service,action=deny,mode=dryrun} = %v, want 1: counted with the action it would have had", got)
	}
	if got := testutil.ToFloat64(s.metrics.Decisions.WithLabelValues("statefulset-headless-service", "deny", ModeEnforce, "CREATE", "StatefulSet")); got != 0 {
		t.Errorf("a dryrun result counted as an enforced denial: %v", got)
	}
	want := []string{
		`"level"=0 "msg"="dryrun violation" "kind"="StatefulSet" "namespace"="shop" "name"="orders-postgresql" "operation"="CREATE" ` +
			`"rule"="statefulset-headless-service" "intendedAction"="deny" "field"="spec.serviceName" "message"="Service \"orders-postgresql-hl\" not found`,
		`"level"=0 "msg"="dryrun warnings" "kind"="StatefulSet" "namespace"="shop" "name"="orders-postgresql" "operation"="CREATE" ` +
			`"warnings"=["annotation stateguard.io/exempt: unknown rule \"statefulset-headless\"`,
	}
	if len(logged) != len(want) {
		t.Fatalf("logged %q, want %d lines", logged, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(logged[i], want[i]) {
			t.Errorf("logged %s\nwant a line starting %s", logged[i], want[i])
		}
	}
}

// failingLookup fails every lookup, as an API server that cannot be reached would.
type failingLookup struct{ engine.Lookup }

func (failingLookup) Namespace(context.Context, string) (*corev1.Namespace, error) {
	return nil, errors.New("connection refused")
}

func (failingLookup) Service(context.Context, string, string) (*corev1.Service, error) {
	return nil, errors.New("connection refused")
}

// TestLookupFailures: stateguard's own failure refuses the write with a
// 500, except under dryrun enforcement, which never blocks a write.
func TestLookupFailures(t *testing.T) {
	for _, tt := range []struct {
		name, cfg   string
		wantAllowed bool
	}{
		{name: "deny", cfg: "", wantAllowed: false},
		{name: "dryrun", cfg: "apiVersion: stateguard.io/v1alpha1\nkind: Config\nenforcement: dryrun\n", wantAllowed: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServerWith(t, tt.cfg, func(o *Options) { o.Lookup = failingLookup{} })
			_, review := s.post(t, PathValidateStatefulSet, reviewOf(t, admissionv1.Create, statefulSetKind, "statefulsets", postgres("shop"), nil))
			if review.Response.Allowed != tt.wantAllowed {
				t.Errorf("allowed %v, want %v (%v)", review.Response.Allowed, tt.wantAllowed, review.Response.Result)
			}
			if !tt.wantAllowed && review.Response.Result.Code != http.StatusInternalServerError {
				t.Errorf("status %d, want 500", review.Response.Result.Code)
			}
			mode := ModeEnforce
			if tt.wantAllowed {
				mode = ModeDryRun // admitted: nothing took effect
			}
			if got := testutil.ToFloat64(s.metrics.Decisions.WithLabelValues("none", "error", mode, "CREATE", "StatefulSet")); got != 1 {
				t.Errorf("stateguard_admission_decisions_total{action=error} = %v, want 1", got)
			}
		})
	}
}

// TestDefaultingPatch applies the answer's patch to the request's object
// the way the API server does and checks the result.
func TestDefaultingPatch(t *testing.T) {
	const defaults = "apiVersion: stateguard.io/v1alpha1\nkind: Config\ndefaults:\n  podManagementPolicy: Parallel\n  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete}\n"
	withoutAnnotations := postgres("shop")
	withoutAnnotations.Annotations = nil
	withoutAnnotations.ManagedFields = nil
	userChoseOrderedReady := postgres("shop")
	userChoseOrderedReady.Annotations[corev1.LastAppliedConfigAnnotation] = strings.Replace(
		userChoseOrderedReady.Annotations[corev1.LastAppliedConfigAnnotation], `"spec":{`, `"spec":{"podManagementPolicy":"OrderedReady",`, 1)
	for _, tt := range []struct {
		name, cfg string
		obj       *appsv1.StatefulSet
		wantPatch bool
		want      string // podManagementPolicy whenDeleted whenScaled, annotation stateguard.io/defaulted
	}{
		{name: "no defaults configured, no patch", obj: postgres("shop"), want: "OrderedReady Retain Retain "},
		{name: "fields omitted from the manifest", cfg: defaults, obj: postgres("shop"), wantPatch: true,
			want: "Parallel Delete Retain persistentVolumeClaimRetentionPolicy.whenDeleted,podManagementPolicy"},
		{name: "an object without annotations", cfg: defaults, obj: withoutAnnotations, wantPatch: true,
			want: "Parallel Delete Retain persistentVolumeClaimRetentionPolicy.whenDeleted,podManagementPolicy"},
		{name: "a field the manifest sets is kept", cfg: defaults, obj: userChoseOrderedReady, wantPatch: true,
			want: "OrderedReady Delete Retain persistentVolumeClaimRetentionPolicy.whenDeleted"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, tt.cfg, namespaceObj("shop", nil), headlessFor(tt.obj))
			body := reviewOf(t, admissionv1.Create, statefulSetKind, "statefulsets", tt.obj, nil)
			_, review := s.post(t, PathMutateStatefulSet, body)
			if !review.Response.Allowed {
				t.Fatalf("not allowed: %v", review.Response.Result)
			}
			if got := len(review.Response.Patch) > 0; got != tt.wantPatch {
				t.Fatalf("patch %s, want a patch: %v", review.Response.Patch, tt.wantPatch)
			}
			objJSON, err := json.Marshal(tt.obj)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantPatch {
				patch, err := jsonpatch.DecodePatch(review.Response.Patch)
				if err != nil {
					t.Fatal(err)
				}
				if objJSON, err = patch.Apply(objJSON); err != nil {
					t.Fatalf("applying %s: %v", review.Response.Patch, err)
				}
			}
			var got appsv1.StatefulSet
			if err := json.Unmarshal(objJSON, &got); err != nil {
				t.Fatal(err)
			}
			r := got.Spec.PersistentVolumeClaimRetentionPolicy
			summary := fmt.Sprintf("%s %s %s %s", got.Spec.PodManagementPolicy, r.WhenDeleted, r.WhenScaled, got.Annotations["stateguard.io/defaulted"])
			if summary != tt.want {
				t.Errorf("after the patch: %q, want %q", summary, tt.want)
			}
			if got.Annotations[corev1.LastAppliedConfigAnnotation] != tt.obj.Annotations[corev1.LastAppliedConfigAnnotation] {
				t.Errorf("the patch changed the last-applied annotation")
			}
		})
	}
}

func TestScaleReviews(t *testing.T) {
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "uploads", Namespace: "shop"},
		Spec:       corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}},
	}
	web := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(1)),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "web", Image: "nginx", VolumeMounts: []corev1.VolumeMount{{Name: "u", MountPath: "/u"}}}},
				Volumes:    []corev1.Volume{{Name: "u", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "uploads"}}}},
			}},
		},
	}
	s := newTestServer(t, "", namespaceObj("shop", nil), claim, web)
	scale := func(replicas int32) *autoscalingv1.Scale {
		return &autoscalingv1.Scale{
			TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
			Spec:       autoscalingv1.ScaleSpec{Replicas: replicas},
		}
	}
	kind := metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}

	_, review := s.post(t, PathValidateScale, reviewOf(t, admissionv1.Update, kind, "deployments", scale(3), scale(1)))
	if review.Response.Allowed || !strings.Contains(review.Response.Result.Message, "deployment-shared-rwo-pvc: spec.replicas:") {
		t.Errorf("scaling to 3 over a ReadWriteOnce claim: allowed=%v %v", review.Response.Allowed, review.Response.Result)
	}
	if _, review = s.post(t, PathValidateScale, reviewOf(t, admissionv1.Update, kind, "deployments", scale(1), scale(3))); !review.Response.Allowed {
		t.Errorf("scaling to 1: denied: %v", review.Response.Result)
	}
	// A readable request the chart never sends: refused as a bad request.
	if _, review = s.post(t, PathValidateScale, reviewOf(t, admissionv1.Create, kind, "deployments", scale(1), nil)); review.Response.Allowed || review.Response.Result.Code != http.StatusBadRequest {
		t.Errorf("a CREATE of a Scale: allowed=%v %v, want a 400 refusal", review.Response.Allowed, review.Response.Result)
	}
}

// TestScaleLiveReadFails: a Deployment that cannot be read refuses the
// scale with a 500 that names it.
func TestScaleLiveReadFails(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	s := newTestServerWith(t, "", func(o *Options) {
		o.Live = fake.NewClientBuilder().WithScheme(scheme).WithInterceptorFuncs(interceptor.Funcs{
			Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
				return errors.New("connection refused")
			},
		}).Build()
	}, namespaceObj("shop", nil))
	scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: autoscalingv1.ScaleSpec{Replicas: 3}}
	kind := metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
	_, review := s.post(t, PathValidateScale, reviewOf(t, admissionv1.Update, kind, "deployments", scale, scale))
	want := "stateguard could not judge Scale shop/web: reading the Deployment: connection refused"
	if review.Response.Allowed || review.Response.Result.Code != http.StatusInternalServerError || !strings.Contains(review.Response.Result.Message, want) {
		t.Errorf("allowed=%v %v, want a 500 saying %q", review.Response.Allowed, review.Response.Result, want)
	}
}

func TestMalformedReviewsGet4xx(t *testing.T) {
	s := newTestServer(t, "")
	for _, body := range []string{"", "{", `{"apiVersion":"v1","kind":"Pod"}`, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`} {
		for path := range s.handlers {
			if code, _ := s.post(t, path, []byte(body)); code < 400 || code >= 500 {
				t.Errorf("%s with body %q: HTTP %d, want 4xx", path, body, code)
			}
		}
	}
}

// BenchmarkStatefulSetReview is one review of a realistic StatefulSet
// through the HTTP handlers: decode, judge or default, encode. The
// controller-runtime case runs the same validator behind
// controller-runtime's own decoding, for comparison.
func BenchmarkStatefulSetReview(b *testing.B) {
	db := postgres("shop")
	s := newTestServer(b, "apiVersion: stateguard.io/v1alpha1\nkind: Config\ndefaults: {podManagementPolicy: Parallel}\n", namespaceObj("shop", nil), headlessFor(db))
	body := reviewOf(b, admissionv1.Create, statefulSetKind, "statefulsets", db, nil)
	// The same StatefulSet setting the field the default would: nothing to change.
	parallel := db.DeepCopy()
	parallel.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	unchanged := reviewOf(b, admissionv1.Create, statefulSetKind, "statefulsets", parallel, nil)
	// The same StatefulSet as Helm 4 and other server-side appliers send
	// it: no last-applied annotation, whose escaped JSON is the costliest
	// string of the review to decode.
	serverSideApplied := db.DeepCopy()
	serverSideApplied.Annotations = nil
	serverSideApplied.ManagedFields[0].Manager, serverSideApplied.ManagedFields[0].Operation = "helm", metav1.ManagedFieldsOperationApply
	ssa := reviewOf(b, admissionv1.Create, statefulSetKind, "statefulsets", serverSideApplied, nil)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		b.Fatal(err)
	}
	for _, bench := range []struct {
		name    string
		handler http.Handler
		body    []byte
	}{
		{"validate", s.handlers[PathValidateStatefulSet], body},
		{"validate-server-side-applied", s.handlers[PathValidateStatefulSet], ssa},
		{"validate-controller-runtime", admission.WithValidator(scheme, admission.Validator[*appsv1.StatefulSet](typedValidator[*appsv1.StatefulSet]{s.opts, (*engine.Engine).StatefulSet})), body},
		{"mutate", s.handlers[PathMutateStatefulSet], body},
		{"mutate-unchanged", s.handlers[PathMutateStatefulSet], unchanged},
	} {
		b.Run(bench.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bench.body)))
			// One request and one response writer for every review, so that
			// what is counted is the handler's work, not the harness's.
			body := &replayBody{}
			req := newReviewRequest(PathValidateStatefulSet, nil)
			req.Body = body
			w := &replayWriter{header: http.Header{}}
			for b.Loop() {
				body.Reset(bench.body)
				req.ContentLength = int64(len(bench.body))
				w.code = 0
				w.body.Reset()
				bench.handler.ServeHTTP(w, req)
				if w.code != http.StatusOK || !bytes.Contains(w.body.Bytes(), []byte(`"allowed":true`)) {
					b.Fatalf("HTTP %d: %s", w.code, w.body.String())
				}
			}
		})
	}
}

// replayBody is a request body that a benchmark reads again and again.
type replayBody struct{ bytes.Reader }

func (*replayBody) Close() error { return nil }

// replayWriter is a response writer that a benchmark reuses.
type replayWriter struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *replayWriter) Header() http.Header  { return w.header }
func (w *replayWriter) WriteHeader(code int) { w.code = code }
func (w *replayWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK // as net/http's first Write does
	}
	return w.body.Write(p)
}

// SetReadDeadline is there as it is on the server's response writers.
func (*replayWriter) SetReadDeadline(time.Time) error { return nil }

var authenticationUser = authenticationv1.UserInfo{Username: "kubernetes-admin", Groups: []string{"system:masters", "system:authenticated"}}

func ptr[T any](v T) *T { return &v }

// TestNoOracle: a review whose object is not the one its request names
// (another namespace, another name) is refused as malformed, and the
// answer says nothing of the objects named: posting crafted reviews to
// the webhook reads no other namespace's Services or Deployments.
func TestNoOracle(t *testing.T) {
	private := postgres("private")
	web := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "private"}}
	s := newTestServer(t, "", namespaceObj("private", nil), namespaceObj("attacker", nil), headlessFor(private), web)
	crafted := func(path string, kind metav1.GroupVersionKind, resource string, obj runtime.Object, edit func(*admissionv1.AdmissionRequest)) []byte {
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(reviewOf(t, admissionv1.Update, kind, resource, obj, obj), &review); err != nil {
			t.Fatal(err)
		}
		edit(review.Request)
		body, err := json.Marshal(review)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	scale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "private"}, Spec: autoscalingv1.ScaleSpec{Replicas: 3}}
	scaleKind := metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"}
	for _, tt := range []struct {
		name, path string
		body       []byte
		want       string
	}{
		{"a StatefulSet of another namespace", PathValidateStatefulSet,
			crafted(PathValidateStatefulSet, statefulSetKind, "statefulsets", private, func(r *admissionv1.AdmissionRequest) { r.Namespace = "attacker" }),
			`the object's namespace "private" is not the request's "attacker"`},
		{"defaulting one", PathMutateStatefulSet,
			crafted(PathMutateStatefulSet, statefulSetKind, "statefulsets", private, func(r *admissionv1.AdmissionRequest) { r.Namespace = "attacker" }),
			`the object's namespace "private" is not the request's "attacker"`},
		{"a Scale of another namespace's Deployment", PathValidateScale,
			crafted(PathValidateScale, scaleKind, "deployments", scale, func(r *admissionv1.AdmissionRequest) { r.Namespace = "attacker" }),
			`the object's namespace "private" is not the request's "attacker"`},
		{"a Scale of another Deployment", PathValidateScale,
			crafted(PathValidateScale, scaleKind, "deployments", scale, func(r *admissionv1.AdmissionRequest) { r.Name = "api" }),
			`the object's name "web" is not the request's "api"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, review := s.post(t, tt.path, tt.body)
			r := review.Response
			if r.Allowed || r.Result == nil || r.Result.Code != http.StatusBadRequest || !strings.HasSuffix(r.Result.Message, tt.want) || len(r.Warnings) > 0 || r.Patch != nil {
				t.Errorf("answer %+v, want a 400 saying only %q", r, tt.want)
			}
		})
	}
}
