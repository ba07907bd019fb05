package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/go-logr/logr"
	gojson "github.com/goccy/go-json"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// The AdmissionReview protocol. controller-runtime's own path decodes
// every review and object twice (once to sniff the kind, once into the
// type) with reflection-heavy decoders, which costs a few hundred
// microseconds per review; here each is decoded once with a fast decoder.
// The API server writes these bodies, so the decoder's leniency
// (case-insensitive field names) is of no concern. Responses are completed
// by controller-runtime's admission.Webhook, which also recovers panics.

// maxReviewBytes bounds a request body: a review carries at most two
// objects of the API server's 3 MiB limit and some metadata.
const maxReviewBytes = 7 << 20

// reviewHandler serves AdmissionReviews (admission.k8s.io/v1) with hook.
// A body that is not one gets a 4xx status and an answer saying why.
type reviewHandler struct {
	hook *admission.Webhook
	log  logr.Logger
}

func (h reviewHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	switch {
	case err != nil:
		h.refuse(w, http.StatusBadRequest, fmt.Errorf("reading the request body: %w", err))
		return
	case len(body) > maxReviewBytes:
		h.refuse(w, http.StatusRequestEntityTooLarge, fmt.Errorf("the request body is larger than %d bytes", maxReviewBytes))
		return
	case len(body) == 0:
		h.refuse(w, http.StatusBadRequest, errors.New("the request body is empty"))
		return
	}
	if mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mediaType != "application/json" {
		h.refuse(w, http.StatusUnsupportedMediaType, fmt.Errorf("Content-Type %q: want application/json", r.Header.Get("Content-Type")))
		return
	}
	var review admissionv1.AdmissionReview
	if err := gojson.Unmarshal(body, &review); err != nil {
		h.refuse(w, http.StatusBadRequest, fmt.Errorf("the body is not an AdmissionReview: %w", err))
		return
	}
	if review.APIVersion != admissionv1.SchemeGroupVersion.String() || review.Kind != "AdmissionReview" || review.Request == nil || review.Request.UID == "" {
		h.refuse(w, http.StatusBadRequest, fmt.Errorf("the body is not an admission.k8s.io/v1 AdmissionReview with a request and its uid (apiVersion %q, kind %q)", review.APIVersion, review.Kind))
		return
	}
	resp := h.hook.Handle(r.Context(), admission.Request{AdmissionRequest: *review.Request})
	h.write(w, http.StatusOK, resp)
}

// refuse answers a body that is not a review. The answer has no request
// UID, so the HTTP status carries the verdict.
func (h reviewHandler) refuse(w http.ResponseWriter, code int, err error) {
	h.log.Info("refused a malformed admission request", "status", code, "reason", err.Error())
	h.write(w, code, admission.Errored(int32(code), err))
}

func (h reviewHandler) write(w http.ResponseWriter, code int, resp admission.Response) {
	review := admissionv1.AdmissionReview{Response: &resp.AdmissionResponse}
	review.SetGroupVersionKind(admissionv1.SchemeGroupVersion.WithKind("AdmissionReview"))
	body, err := json.Marshal(review)
	if err != nil {
		h.log.Error(err, "encoding an admission response")
		http.Error(w, "encoding the admission response failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// decodeObject decodes one object of a review.
func decodeObject(raw runtime.RawExtension, into runtime.Object) error {
	if len(raw.Raw) == 0 {
		return errors.New("the review carries no object")
	}
	if err := gojson.Unmarshal(raw.Raw, into); err != nil {
		return fmt.Errorf("decoding the object: %w", err)
	}
	return nil
}
