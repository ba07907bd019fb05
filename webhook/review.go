package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/go-logr/logr"
	gojson "github.com/goccy/go-json"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// The AdmissionReview protocol, and the typed validators and defaulters
// on top of it. controller-runtime's own path decodes every review and
// object twice (once to sniff the kind, once into the type) with
// reflection-heavy decoders, which costs a few hundred microseconds per
// review; here each is decoded once with a fast decoder. The API server
// writes these bodies, so the decoder's leniency (case-insensitive field
// names) is of no concern. Responses are built by controller-runtime's
// admission.Webhook, which also recovers panics.

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

// validating adapts a typed validator: decode, then ValidateCreate,
// ValidateUpdate or ValidateDelete as controller-runtime's own adapter does.
func validating[T runtime.Object](newObject func() T, v admission.Validator[T]) admission.Handler {
	return admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		ctx = admission.NewContextWithRequest(ctx, req)
		obj := newObject()
		var warnings admission.Warnings
		var err error
		switch req.Operation {
		case admissionv1.Create:
			if err := decodeObject(req.Object, obj); err != nil {
				return admission.Errored(http.StatusBadRequest, err)
			}
			warnings, err = v.ValidateCreate(ctx, obj)
		case admissionv1.Update:
			old := newObject()
			if err := decodeObject(req.Object, obj); err != nil {
				return admission.Errored(http.StatusBadRequest, err)
			}
			if err := decodeObject(req.OldObject, old); err != nil {
				return admission.Errored(http.StatusBadRequest, err)
			}
			warnings, err = v.ValidateUpdate(ctx, old, obj)
		case admissionv1.Delete:
			// The object being deleted is the old object.
			if err := decodeObject(req.OldObject, obj); err != nil {
				return admission.Errored(http.StatusBadRequest, err)
			}
			warnings, err = v.ValidateDelete(ctx, obj)
		default:
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("unsupported operation %q", req.Operation))
		}
		return verdictResponse(warnings, err)
	})
}

// verdictResponse is the answer to a validator's verdict: an API status
// error keeps its code (500 for a lookup failure), any other error denies.
func verdictResponse(warnings admission.Warnings, err error) admission.Response {
	var status apierrors.APIStatus
	switch {
	case errors.As(err, &status):
		result := status.Status()
		return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Result: &result}}.WithWarnings(warnings...)
	case err != nil:
		return admission.Denied(err.Error()).WithWarnings(warnings...)
	}
	return admission.Allowed("").WithWarnings(warnings...)
}

// defaulting adapts a typed defaulter: decode, Default, and answer with
// the JSON patch that patch builds from the object before and after.
// Building the patch from the few fields a defaulter may set is exact and
// costs microseconds; diffing the two objects' JSON costs about a
// millisecond per review.
func defaulting[T runtime.Object](newObject func() T, d admission.Defaulter[T], patch func(before, after T) []jsonpatch.Operation) admission.Handler {
	return admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
			return admission.Allowed("")
		}
		ctx = admission.NewContextWithRequest(ctx, req)
		obj := newObject()
		if err := decodeObject(req.Object, obj); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		before := obj.DeepCopyObject().(T)
		if err := d.Default(ctx, obj); err != nil {
			return verdictResponse(nil, err)
		}
		resp := admission.Allowed("")
		resp.Patches = patch(before, obj)
		return resp
	})
}

// statefulSetPatch covers the fields the engine's StatefulSet defaults
// set: podManagementPolicy, the claim retention policy and the
// stateguard.io/defaulted annotation. JSON patch "add" replaces a member
// that exists and creates one that does not.
func statefulSetPatch(before, after *appsv1.StatefulSet) []jsonpatch.Operation {
	var ops []jsonpatch.Operation
	if after.Spec.PodManagementPolicy != before.Spec.PodManagementPolicy {
		ops = append(ops, jsonpatch.NewOperation("add", "/spec/podManagementPolicy", after.Spec.PodManagementPolicy))
	}
	if !reflect.DeepEqual(after.Spec.PersistentVolumeClaimRetentionPolicy, before.Spec.PersistentVolumeClaimRetentionPolicy) {
		ops = append(ops, jsonpatch.NewOperation("add", "/spec/persistentVolumeClaimRetentionPolicy", after.Spec.PersistentVolumeClaimRetentionPolicy))
	}
	for key, value := range after.Annotations {
		if old, ok := before.Annotations[key]; ok && old == value {
			continue
		}
		if before.Annotations == nil {
			ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations", after.Annotations))
			break
		}
		ops = append(ops, jsonpatch.NewOperation("add", "/metadata/annotations/"+escapeJSONPointer(key), value))
	}
	return ops
}

// escapeJSONPointer escapes a map key for a JSON pointer (RFC 6901).
func escapeJSONPointer(key string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
}
