package webhook

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	gojson "github.com/goccy/go-json"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
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

// largeReviewBytes separates large bodies from the ordinary reviews of a
// few kilobytes: a body above it, or of unknown length, is large.
const largeReviewBytes = 1 << 20

// Limits bound what one replica holds for reviews at once, so that clients
// that send large bodies slowly, or never finish them, can neither exhaust
// its memory nor crowd out the API server's ordinary reviews.
type Limits struct {
	// ReadTimeout bounds how long a body may take to arrive; 0 is none.
	ReadTimeout time.Duration
	// InFlight is how many reviews are handled at once, and InFlightLarge
	// how many of those have large bodies (up to 7 MiB each). A review
	// over either gets 429 Too Many Requests at once.
	InFlight, InFlightLarge int
}

// DefaultLimits bound the bodies a replica holds to under 100 MiB: 64
// ordinary reviews (up to 1 MiB each), 4 large bodies (28 MiB at most),
// and bodies that arrive within 10 s, twice the longest timeout the chart
// lets the API server wait.
var DefaultLimits = Limits{ReadTimeout: 10 * time.Second, InFlight: 64, InFlightLarge: 4}

// reviewSlots count the reviews in flight of one replica, across handlers.
type reviewSlots struct {
	limits       Limits
	small, large chan struct{}
}

func newReviewSlots(l Limits) *reviewSlots {
	return &reviewSlots{limits: l, small: make(chan struct{}, l.InFlight), large: make(chan struct{}, l.InFlightLarge)}
}

// enter takes a slot for a body of length n (-1: unknown); ok is false
// when every slot is taken.
func (a *reviewSlots) enter(n int64) (leave func(), ok bool) {
	slots := a.small
	if n < 0 || n > largeReviewBytes {
		slots = a.large
	}
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, true
	default:
		return nil, false
	}
}

var reviewTypeMeta = metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"}

// reviewHandler serves AdmissionReviews (admission.k8s.io/v1) with hook.
// A body that is not one gets a 4xx status and an answer saying why.
type reviewHandler struct {
	hook   *admission.Webhook
	decode reviewDecoder
	slots  *reviewSlots
	log    logr.Logger
}

func (h reviewHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	leave, ok := h.slots.enter(r.ContentLength)
	if !ok {
		h.refuse(w, http.StatusTooManyRequests, errors.New("too many reviews in flight"))
		return
	}
	defer leave()
	if d := h.slots.limits.ReadTimeout; d > 0 {
		// The server's next request on the connection clears it.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
	}
	body, err := readBody(r)
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
	review, objectErr, err := h.decode(body)
	if err != nil {
		h.refuse(w, http.StatusBadRequest, fmt.Errorf("the body is not an AdmissionReview: %w", err))
		return
	}
	if review.TypeMeta != reviewTypeMeta || review.Request == nil || review.Request.UID == "" {
		h.refuse(w, http.StatusBadRequest, fmt.Errorf("the body is not an admission.k8s.io/v1 AdmissionReview with a request and its uid (apiVersion %q, kind %q)", review.APIVersion, review.Kind))
		return
	}
	req := admission.Request{AdmissionRequest: *review.Request}
	if objectErr != nil {
		resp := admission.Errored(http.StatusBadRequest, objectErr)
		_ = resp.Complete(req)
		h.write(w, http.StatusOK, resp)
		return
	}
	h.write(w, http.StatusOK, h.hook.Handle(r.Context(), req))
}

// readBody reads up to maxReviewBytes+1 bytes, into a buffer of the
// declared length when there is one: reading into a growing buffer would
// hold up to twice the body.
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength < 0 || r.ContentLength > maxReviewBytes {
		return io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	}
	body := make([]byte, r.ContentLength)
	_, err := io.ReadFull(r.Body, body)
	return body, err
}

// refuse answers a body that is not a review. The answer has no request
// UID, so the HTTP status carries the verdict.
func (h reviewHandler) refuse(w http.ResponseWriter, code int, err error) {
	h.log.Info("refused a malformed admission request", "status", code, "reason", err.Error())
	h.write(w, code, admission.Errored(int32(code), err))
}

func (h reviewHandler) write(w http.ResponseWriter, code int, resp admission.Response) {
	review := admissionv1.AdmissionReview{TypeMeta: reviewTypeMeta, Response: &resp.AdmissionResponse}
	body, err := gojson.Marshal(review)
	if err != nil {
		h.log.Error(err, "encoding an admission response")
		http.Error(w, "encoding the admission response failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// A reviewDecoder decodes an AdmissionReview and its objects at once:
// each object goes straight into its type, into RawExtension.Object, with
// no intermediate copy of its JSON. The decoded strings refer to the
// request body, which no answer outlives and nothing writes to. A review
// whose objects are not of the type gets objectErr: it is answered with
// 400 and the reason, as the API server's review of a malformed object.
type reviewDecoder func(body []byte) (review admissionv1.AdmissionReview, objectErr, err error)

// typedReview is an AdmissionReview whose objects are of type J. The fields
// declared here shadow the embedded request's, as in encoding/json; the
// request's options are skipped, as no handler reads them.
type typedReview[J any] struct {
	metav1.TypeMeta `json:",inline"`
	Request         *struct {
		admissionv1.AdmissionRequest
		Object    *J       `json:"object"`
		OldObject *J       `json:"oldObject"`
		Options   struct{} `json:"options"`
	} `json:"request"`
}

// decodeReviewOf decodes reviews whose objects are a J, and makes an
// object of each with object.
func decodeReviewOf[J any, T client.Object](object func(*J) T) reviewDecoder {
	return func(body []byte) (admissionv1.AdmissionReview, error, error) {
		var decoded typedReview[J]
		if err := unmarshal(body, &decoded); err != nil {
			return undecodedObjects[J](body)
		}
		review := admissionv1.AdmissionReview{TypeMeta: decoded.TypeMeta}
		if r := decoded.Request; r != nil {
			req := r.AdmissionRequest
			if r.Object != nil {
				req.Object.Object = object(r.Object)
			}
			if r.OldObject != nil {
				req.OldObject.Object = object(r.OldObject)
			}
			review.Request = &req
		}
		return review, nil, nil
	}
}

// undecodedObjects tells a review whose objects are not a J from a body
// that is not a review.
func undecodedObjects[J any](body []byte) (review admissionv1.AdmissionReview, objectErr, err error) {
	if err := unmarshal(body, &review); err != nil || review.Request == nil {
		return review, nil, err
	}
	for _, o := range []struct {
		raw    []byte
		prefix string
	}{{review.Request.Object.Raw, ""}, {review.Request.OldObject.Raw, "old object: "}} {
		var obj J
		if err := unmarshal(o.raw, &obj); len(o.raw) > 0 && err != nil {
			return review, fmt.Errorf("%sdecoding the object: %w", o.prefix, err), nil
		}
	}
	return review, errors.New("the review's objects decode on their own but not in the review"), nil
}

func unmarshal(data []byte, v any) error {
	return gojson.UnmarshalWithOption(data, v, gojson.DecodeNoCopyString())
}

// decodeWholeReview decodes reviews of T, whole.
func decodeWholeReview[T any, PT interface {
	*T
	client.Object
}]() reviewDecoder {
	return decodeReviewOf(func(obj *T) PT { return obj })
}

// requested is an object of the review, or an error when it has none, or
// when it is not the object the request names: the API server never sends
// such a review, and judging it would answer questions about another
// namespace's Services, claims or Deployments to whoever can post to the
// webhook.
func requested[T client.Object](req admission.Request, raw runtime.RawExtension) (T, error) {
	obj, ok := raw.Object.(T)
	if !ok {
		return obj, errors.New("the review carries no object")
	}
	if obj.GetNamespace() != req.Namespace {
		return obj, fmt.Errorf("the object's namespace %q is not the request's %q", obj.GetNamespace(), req.Namespace)
	}
	if req.Name != "" && obj.GetName() != req.Name {
		return obj, fmt.Errorf("the object's name %q is not the request's %q", obj.GetName(), req.Name)
	}
	return obj, nil
}
