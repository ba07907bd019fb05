package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/stateguard/stateguard/engine"
)

// The engine behind controller-runtime's typed interfaces, for comparing
// stateguard's handlers with admission.WithValidator and WithDefaulter.
// The verdict becomes an answer the way the handlers make it (answer), so
// that what is compared is the admission protocol: decoding, operations,
// status codes, warnings and patches.

type typedValidator[T client.Object] struct {
	opts    Options
	verdict func(e *engine.Engine, ctx context.Context, obj, old T, lk engine.Lookup) (engine.Verdict, error)
}

func (v typedValidator[T]) validate(ctx context.Context, obj, old T) (admission.Warnings, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil, err
	}
	j := &judge{engine: v.opts.Engine, lookup: v.opts.Lookup, live: v.opts.Live, metrics: v.opts.Metrics, log: v.opts.Log}
	verdict, err := v.verdict(j.engine(), withRequester(ctx, req), obj, old, j.lookup)
	resp := j.answer(req, req.Kind.Kind, obj, verdict, err)
	switch {
	case resp.Allowed:
		return resp.Warnings, nil
	case resp.Result.Code == http.StatusForbidden:
		return resp.Warnings, denial(resp.Result.Message)
	}
	return resp.Warnings, &apierrors.StatusError{ErrStatus: *resp.Result}
}

type denial string

func (d denial) Error() string { return string(d) }

func (v typedValidator[T]) ValidateCreate(ctx context.Context, obj T) (admission.Warnings, error) {
	var none T
	return v.validate(ctx, obj, none)
}

func (v typedValidator[T]) ValidateUpdate(ctx context.Context, old, obj T) (admission.Warnings, error) {
	return v.validate(ctx, obj, old)
}

func (typedValidator[T]) ValidateDelete(context.Context, T) (admission.Warnings, error) {
	return nil, nil
}

type typedDefaulter struct{ opts Options }

func (d typedDefaulter) Default(ctx context.Context, sts *appsv1.StatefulSet) error {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return err
	}
	var old *appsv1.StatefulSet
	switch req.Operation {
	case admissionv1.Create:
	case admissionv1.Update:
		old = &appsv1.StatefulSet{}
		if err := json.Unmarshal(req.OldObject.Raw, old); err != nil {
			return apierrors.NewBadRequest(err.Error())
		}
	default:
		return nil
	}
	if _, _, err := d.opts.Engine().DefaultStatefulSet(ctx, sts, old, d.opts.Lookup); err != nil {
		return apierrors.NewInternalError(err)
	}
	return nil
}

// TestHandlersMatchControllerRuntime sends every review of the fuzz
// corpus through stateguard's handlers and through controller-runtime's
// admission.WithValidator and WithDefaulter around the same engine, and
// compares what the API server acts on: allowed, status code, warnings
// and the object after the patch.
func TestHandlersMatchControllerRuntime(t *testing.T) {
	s := newTestServer(t, corpusConfig, corpusObjects()...)
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	reference := map[string]*admission.Webhook{
		PathValidateStatefulSet: admission.WithValidator(scheme, admission.Validator[*appsv1.StatefulSet](typedValidator[*appsv1.StatefulSet]{s.opts, (*engine.Engine).StatefulSet})),
		PathMutateStatefulSet:   admission.WithDefaulter(scheme, admission.Defaulter[*appsv1.StatefulSet](typedDefaulter{s.opts})),
		PathValidateDeployment:  admission.WithValidator(scheme, admission.Validator[*appsv1.Deployment](typedValidator[*appsv1.Deployment]{s.opts, (*engine.Engine).Deployment})),
		PathValidateHPA: admission.WithValidator(scheme, admission.Validator[*autoscalingv2.HorizontalPodAutoscaler](
			typedValidator[*autoscalingv2.HorizontalPodAutoscaler]{s.opts, (*engine.Engine).HorizontalPodAutoscaler})),
	}
	compared := 0
	for _, c := range reviewCorpus(t) {
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(c.body, &review); err != nil || review.Request == nil || review.Request.UID == "" {
			continue // not a review: refused over HTTP before any handler runs
		}
		for path, ref := range reference {
			if c.kind != "" && c.kind != pathKind(path) {
				continue
			}
			code, ours := s.post(t, path, c.body)
			if code != http.StatusOK {
				t.Errorf("%s %s: HTTP %d", c.name, path, code)
				continue
			}
			theirs := ref.Handle(context.Background(), admission.Request{AdmissionRequest: *review.Request})
			if diff := cmp.Diff(outcome(t, review.Request.Object.Raw, &theirs.AdmissionResponse), outcome(t, review.Request.Object.Raw, ours.Response)); diff != "" {
				t.Errorf("%s %s (-controller-runtime +stateguard):\n%s", c.name, path, diff)
			}
			compared++
		}
	}
	if compared < 30 {
		t.Fatalf("compared %d answers: the corpus lost its reviews", compared)
	}
}

func pathKind(path string) string {
	switch path {
	case PathValidateStatefulSet, PathMutateStatefulSet:
		return "StatefulSet"
	case PathValidateDeployment:
		return "Deployment"
	case PathValidateHPA:
		return "HorizontalPodAutoscaler"
	}
	return ""
}

// admissionOutcome is what the API server acts on in an answer.
type admissionOutcome struct {
	Allowed  bool
	Code     int32
	Warnings []string
	Patched  map[string]any // the object after the patch; nil without one
}

func outcome(t *testing.T, object []byte, r *admissionv1.AdmissionResponse) admissionOutcome {
	t.Helper()
	o := admissionOutcome{Allowed: r.Allowed, Warnings: r.Warnings}
	if r.Result != nil {
		o.Code = r.Result.Code
	}
	if o.Code == 0 {
		o.Code = http.StatusOK // an allowed answer without a status is a 200
	}
	patch := r.Patch
	if len(patch) == 0 {
		return o
	}
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("patch %s: %v", patch, err)
	}
	patched, err := p.Apply(object)
	if err != nil {
		t.Fatalf("applying %s: %v", patch, err)
	}
	if err := json.Unmarshal(patched, &o.Patched); err != nil {
		t.Fatal(err)
	}
	return o
}
