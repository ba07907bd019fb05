package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/lookup"
)

// judge is what every handler shares: the policy, the lookups and the way
// a verdict becomes an admission answer. All judging happens in the engine.
type judge struct {
	engine  func() *engine.Engine
	lookup  engine.Lookup
	live    lookup.Reader
	metrics *Metrics
	log     logr.Logger
}

// answer turns a verdict into admission warnings and, when anything is at
// deny, a denial that carries every denied violation in one message. A
// silent (dryrun) verdict tells the requester nothing: its violations are
// logged and counted with the action enforcing would give them.
func (j *judge) answer(req admission.Request, kind string, obj metav1.Object, v engine.Verdict, err error) admission.Response {
	op := req.Operation
	// The logger with the object's keys costs allocations: it is made
	// only for a review that logs.
	log := func() logr.Logger {
		return j.log.WithValues("kind", kind, "namespace", obj.GetNamespace(), "name", obj.GetName(), "operation", op)
	}
	if err != nil {
		return j.failed(log(), kind, op, obj.GetNamespace(), obj.GetName(), err)
	}
	warnings := v.Warnings
	var denials []string
	var deniedRules []string
	for _, r := range v.Results {
		counted, mode := r.Action, ModeEnforce
		if r.Action == engine.ActionDryRun {
			counted, mode = r.Intended, ModeDryRun
		}
		j.metrics.Decisions.WithLabelValues(r.Rule, string(counted), mode, string(op), kind).Inc()
		field := r.Field.String()
		line := r.Rule + ": " + field + ": " + r.Message
		switch r.Action {
		case engine.ActionDeny:
			denials = append(denials, line)
			deniedRules = append(deniedRules, r.Rule)
		case engine.ActionWarn:
			warnings = append(warnings, line)
		case engine.ActionDryRun:
			// The record the dry-run audit mode exists for: what enforcing
			// the policy would have done to this request.
			log().Info("dryrun violation", "rule", r.Rule, "intendedAction", r.Intended, "field", field, "message", r.Message)
		case engine.ActionExempt:
			// Who was let through, and on whose authority.
			log().Info("exempt", "rule", r.Rule, "exemption", r.Exemption, "requester", req.UserInfo.Username, "field", field)
		}
	}
	if v.Silent && len(warnings) > 0 {
		// Kept from the requester, but a mistyped exemption must surface
		// before enforcement turns it into a denial.
		log().Info("dryrun warnings", "warnings", warnings)
		warnings = nil
	}
	if len(v.Results) == 0 {
		j.metrics.Decisions.WithLabelValues("none", "allow", ModeEnforce, string(op), kind).Inc()
	}
	if debug := j.log.V(1); debug.Enabled() {
		decisions := make([]string, 0, len(v.Results))
		for _, r := range v.Results {
			decisions = append(decisions, r.Rule+"="+string(r.Action))
		}
		log().V(1).Info("decision", "denied", len(denials) > 0, "results", decisions)
	}
	if len(denials) == 0 {
		return admission.Allowed("").WithWarnings(warnings...)
	}
	noun := "rule"
	if len(denials) > 1 {
		noun = "rules"
	}
	message := fmt.Sprintf("%s %q violates %d stateguard %s:\n%s", kind, obj.GetName(), len(denials), noun, strings.Join(denials, "\n"))
	// Who was refused and why; the message names fields, never their values' content.
	log().Info("denied", "requester", req.UserInfo.Username, "rules", deniedRules, "dryRunRequest", req.DryRun != nil && *req.DryRun, "message", message)
	return admission.Denied(message).WithWarnings(warnings...)
}

// failed logs and counts a failure to judge. It is an internal error (500)
// that refuses the write, except under dryrun enforcement, which never
// blocks a write, not even when stateguard itself fails.
func (j *judge) failed(log logr.Logger, kind string, op admissionv1.Operation, namespace, name string, err error) admission.Response {
	log.Error(err, "could not judge")
	if j.engine().Enforcement() == engine.ActionDryRun {
		j.metrics.Decisions.WithLabelValues("none", "error", ModeDryRun, string(op), kind).Inc()
		return admission.Allowed("")
	}
	j.metrics.Decisions.WithLabelValues("none", "error", ModeEnforce, string(op), kind).Inc()
	return statusResponse(apierrors.NewInternalError(fmt.Errorf("stateguard could not judge %s %s/%s: %w", kind, namespace, name, err)))
}

// withRequester tells the engine who asks: the annotation
// stateguard.io/exempt is honoured for the configured grantors only.
func withRequester(ctx context.Context, req admission.Request) context.Context {
	return engine.WithRequester(ctx, engine.Requester{Username: req.UserInfo.Username, Groups: req.UserInfo.Groups})
}

// statusResponse refuses with an API status: its code, reason and message.
func statusResponse(err apierrors.APIStatus) admission.Response {
	status := err.Status()
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Result: &status}}
}

// validating judges CREATE and UPDATE of one kind with an engine method.
// DELETE and CONNECT are never judged; a DELETE's object, the old one, is
// still decoded, so that a malformed review is refused as it would be by
// controller-runtime's admission.WithValidator.
type validating[T client.Object] struct {
	*judge
	kind    string
	verdict func(e *engine.Engine, ctx context.Context, obj, old T, lk engine.Lookup) (engine.Verdict, error)
}

func (h validating[T]) Handle(ctx context.Context, req admission.Request) admission.Response {
	var old T // nil: a creation
	switch req.Operation {
	case admissionv1.Create:
	case admissionv1.Update:
		var err error
		if old, err = requested[T](req, req.OldObject); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("old object: %w", err))
		}
	case admissionv1.Delete:
		if _, err := requested[T](req, req.OldObject); err != nil {
			return admission.Errored(http.StatusBadRequest, err)
		}
		return admission.Allowed("")
	case admissionv1.Connect:
		return admission.Allowed("")
	default:
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("unknown operation %q", req.Operation))
	}
	obj, err := requested[T](req, req.Object)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	v, err := h.verdict(h.engine(), withRequester(ctx, req), obj, old, h.lookup)
	return h.answer(req, h.kind, obj, v, err)
}

// defaulting applies the StatefulSet defaults on CREATE and UPDATE.
type defaulting struct{ *judge }

func (h defaulting) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	sts, err := requested[*appsv1.StatefulSet](req, req.Object)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	var old *appsv1.StatefulSet // nil: a creation
	if req.Operation == admissionv1.Update {
		if old, err = requested[*appsv1.StatefulSet](req, req.OldObject); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("old object: %w", err))
		}
	}
	before := defaultedPartsOf(sts)
	changed, warnings, err := h.engine().DefaultStatefulSet(ctx, sts, old, h.lookup)
	if err != nil {
		h.log.Error(err, "could not default", "namespace", sts.Namespace, "name", sts.Name)
		return statusResponse(apierrors.NewInternalError(err))
	}
	if len(changed) > 0 || len(warnings) > 0 {
		h.log.V(1).Info("defaulted", "namespace", sts.Namespace, "name", sts.Name, "operation", req.Operation, "fields", changed, "warnings", warnings)
	}
	if len(changed) == 0 {
		return admission.Allowed("")
	}
	return patchResponse(before, defaultedPartsOf(sts))
}

// defaultedParts are the parts of a StatefulSet that engine.DefaultStatefulSet
// may change, where they sit in the object. Of the annotations only its
// own is kept, in a map that exists when the object's does: the patch then
// adds the one annotation, or the map when the object has none.
type defaultedParts struct {
	Metadata struct {
		Annotations *map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec struct {
		PodManagementPolicy                  appsv1.PodManagementPolicyType                          `json:"podManagementPolicy,omitempty"`
		PersistentVolumeClaimRetentionPolicy *appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy `json:"persistentVolumeClaimRetentionPolicy,omitempty"`
	} `json:"spec"`
}

// defaultedPartsOf copies the parts of sts the defaults may change.
func defaultedPartsOf(sts *appsv1.StatefulSet) defaultedParts {
	var p defaultedParts
	if sts.Annotations != nil {
		own := map[string]string{}
		if v, ok := sts.Annotations[engine.AnnotationDefaulted]; ok {
			own[engine.AnnotationDefaulted] = v
		}
		p.Metadata.Annotations = &own
	}
	p.Spec.PodManagementPolicy = sts.Spec.PodManagementPolicy
	if r := sts.Spec.PersistentVolumeClaimRetentionPolicy; r != nil {
		p.Spec.PersistentVolumeClaimRetentionPolicy = r.DeepCopy()
	}
	return p
}

// patchResponse admits with the JSON patch that jsonpatch computes from
// the defaulted parts of the object before and after. The patch applies to
// the whole object, whose paths they keep; diffing only them, not two
// whole objects, costs microseconds, and never touches a field stateguard's
// API types do not know.
func patchResponse(before, after defaultedParts) admission.Response {
	original, err := json.Marshal(before)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	current, err := json.Marshal(after)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	return admission.PatchResponseFromRaw(original, current)
}

// scales validates writes of deployments/scale (kubectl scale). The object
// is an autoscaling/v1 Scale, so the Deployment is read fresh.
type scales struct{ *judge }

func (h scales) Handle(ctx context.Context, req admission.Request) admission.Response {
	// The chart registers this handler for UPDATE only (the scale
	// subresource is never created or deleted): anything else is not a
	// request the API server sends.
	if req.Operation != admissionv1.Update {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("operation %q: the scale webhook judges UPDATE of deployments/scale only", req.Operation))
	}
	scale, err := requested[*autoscalingv1.Scale](req, req.Object)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	dep := &appsv1.Deployment{}
	if err := h.live.Get(ctx, client.ObjectKey{Namespace: req.Namespace, Name: req.Name}, dep); err != nil {
		if apierrors.IsNotFound(err) {
			return admission.Allowed("")
		}
		log := h.log.WithValues("kind", "Scale", "namespace", req.Namespace, "name", req.Name, "operation", req.Operation)
		return h.failed(log, "Scale", req.Operation, req.Namespace, req.Name, fmt.Errorf("reading the Deployment: %w", err))
	}
	v, err := h.engine().Scale(withRequester(ctx, req), scale, dep, h.lookup)
	return h.answer(req, "Scale", dep, v, err)
}
