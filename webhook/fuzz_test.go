package webhook

import (
	"net/http"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

// FuzzReviewHandler sends arbitrary bodies to the StatefulSet handlers: no
// panic, always an AdmissionReview answer, and a 2xx status only for a
// request that carries a UID, whose answer names that UID.
func FuzzReviewHandler(f *testing.F) {
	db := postgres("shop")
	f.Add(reviewOf(f, admissionv1.Create, statefulSetKind, "statefulsets", db, nil))
	f.Add(reviewOf(f, admissionv1.Update, statefulSetKind, "statefulsets", db, db))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","operation":"CREATE","object":{"spec":{"replicas":"three"}}}}`))
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod"}`))
	f.Add([]byte{})
	s := newTestServer(f, "apiVersion: stateguard.io/v1alpha1\nkind: Config\ndefaults: {podManagementPolicy: Parallel}\n", namespaceObj("shop", nil), headlessFor(db))
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
