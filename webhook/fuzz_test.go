package webhook

import (
	"bytes"
	"net/http"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// The corpus: the fuzz test's seeds, and the reviews the handlers are
// compared with controller-runtime's on.

const corpusConfig = "apiVersion: stateguard.io/v1alpha1\nkind: Config\ndefaults: {podManagementPolicy: Parallel}\n"

// corpusObjects are what the corpus' lookups find: namespace shop with the
// postgres Service and a ReadWriteOnce claim, and namespace staging, whose
// annotation lowers denials to warnings.
func corpusObjects() []runtime.Object {
	return []runtime.Object{
		namespaceObj("shop", nil), headlessFor(postgres("shop")),
		namespaceObj("staging", map[string]string{"stateguard.io/enforcement": "warn"}),
		&corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "uploads", Namespace: "shop"},
			Spec:       corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}},
		},
	}
}

type corpusEntry struct {
	name string
	kind string // of the object; "" for a body that is not a review
	body []byte
}

var (
	deploymentKind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	hpaKind        = metav1.GroupVersionKind{Group: "autoscaling", Version: "v2", Kind: "HorizontalPodAutoscaler"}
)

func reviewCorpus(tb testing.TB) []corpusEntry {
	db := postgres("shop")
	stored := postgres("shop")
	stored.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
	noService := postgres("shop")
	noService.Spec.ServiceName = "missing"
	// A manifest that omits podManagementPolicy, as the API server sends it after its own defaulting.
	omitted := postgres("shop")
	omitted.Annotations = nil
	staging := postgres("staging")
	web := func(replicas int32) *appsv1.Deployment {
		return &appsv1.Deployment{
			TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr(replicas),
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "web", Image: "nginx", VolumeMounts: []corev1.VolumeMount{{Name: "u", MountPath: "/u"}}}},
					Volumes:    []corev1.Volume{{Name: "u", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "uploads"}}}},
				}},
			},
		}
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MaxReplicas:    5,
		},
	}
	sts := func(op admissionv1.Operation, obj, old runtime.Object) []byte {
		return reviewOf(tb, op, statefulSetKind, "statefulsets", obj, old)
	}
	// A field newer than stateguard's API types must survive the defaults' patch.
	future := bytes.Replace(sts(admissionv1.Create, db, nil), []byte(`"spec":{`), []byte(`"spec":{"futureField":{"enabled":true},`), 1)
	return []corpusEntry{
		{"create, compliant, defaulted", "StatefulSet", sts(admissionv1.Create, db, nil)},
		{"create without the Service", "StatefulSet", sts(admissionv1.Create, noService, nil)},
		{"create in a warn namespace", "StatefulSet", sts(admissionv1.Create, staging, nil)},
		{"create of a field newer than the API types", "StatefulSet", future},
		{"update, unchanged", "StatefulSet", sts(admissionv1.Update, db, db)},
		{"update that omits a stored default", "StatefulSet", sts(admissionv1.Update, omitted, stored)},
		{"update that loses its Service", "StatefulSet", sts(admissionv1.Update, noService, db)},
		{"update without the old object", "StatefulSet", sts(admissionv1.Update, db, nil)},
		{"delete", "StatefulSet", sts(admissionv1.Delete, db, db)},
		{"delete without the old object", "StatefulSet", sts(admissionv1.Delete, db, nil)},
		{"connect", "StatefulSet", sts(admissionv1.Connect, db, nil)},
		{"an unknown operation", "StatefulSet", sts("PATCH", db, nil)},
		{"an object of the wrong shape", "StatefulSet", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"CREATE","object":{"spec":{"replicas":"three"}}}}`)},
		{"a review without an object", "StatefulSet", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"CREATE"}}`)},
		{"deployment of 3 over a ReadWriteOnce claim", "Deployment", reviewOf(tb, admissionv1.Create, deploymentKind, "deployments", web(3), nil)},
		{"deployment of 1 with a rolling update", "Deployment", reviewOf(tb, admissionv1.Create, deploymentKind, "deployments", web(1), nil)},
		{"deployment scaled up", "Deployment", reviewOf(tb, admissionv1.Update, deploymentKind, "deployments", web(3), web(1))},
		{"HPA of 5 over the claim", "HorizontalPodAutoscaler", reviewOf(tb, admissionv1.Create, hpaKind, "horizontalpodautoscalers", hpa, nil)},
		{"not a review", "", []byte(`{"apiVersion":"v1","kind":"Pod"}`)},
		{"an empty body", "", []byte{}},
	}
}

// FuzzReviewHandler sends arbitrary bodies to the StatefulSet handlers: no
// panic, always an AdmissionReview answer, and a 2xx status only for a
// request that carries a UID, whose answer names that UID.
func FuzzReviewHandler(f *testing.F) {
	for _, c := range reviewCorpus(f) {
		f.Add(c.body)
	}
	s := newTestServer(f, corpusConfig, corpusObjects()...)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{PathValidateStatefulSet, PathMutateStatefulSet} {
			code, review := s.post(t, path, body)
			if review.Response == nil {
				t.Fatalf("%s: HTTP %d without a response", path, code)
			}
			if (code == http.StatusOK) != (review.Response.UID != "") {
				t.Errorf("%s: HTTP %d with response UID %q", path, code, review.Response.UID)
			}
			if code != http.StatusOK && (code < 400 || code >= 500) {
				t.Errorf("%s: HTTP %d for a malformed body", path, code)
			}
		}
	})
}
