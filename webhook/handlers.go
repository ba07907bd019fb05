package webhook

import (
	"context"
	"errors"
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

	"github.com/stateguard/stateguard/config"
	"github.com/stateguard/stateguard/engine"
)

// judge is what every handler shares: the policy, the lookups and the way
// a verdict becomes an admission answer. All judging happens in the engine.
type judge struct {
	policy  *Policy
	lookup  engine.Lookup
	live    client.Reader // fresh reads, for the Deployment behind a Scale
	metrics *Metrics
	log     logr.Logger
}

// answer turns a verdict into admission warnings and, when anything is at
// deny, a denial that carries every denied violation in one message. A
// silent (dryrun) verdict tells the requester nothing: its violations are
// logged and counted with the action enforcing would give them.
// Lookup failures are the webhook's own fault: an internal error (500),
// except in dryrun, which never blocks a write.
func (j *judge) answer(kind string, op admissionv1.Operation, obj metav1.Object, v engine.Verdict, err error) (admission.Warnings, error) {
	log := j.log.WithValues("kind", kind, "namespace", obj.GetNamespace(), "name", obj.GetName(), "operation", op)
	if err != nil {
		return nil, j.judgeFailed(log, kind, op, obj, err)
	}
	warnings := admission.Warnings(v.Warnings)
	var denials, decisions []string
	for _, r := range v.Results {
		counted := r.Action
		if r.Action == config.ActionDryRun {
			counted = r.Intended
		}
		j.metrics.Decisions.WithLabelValues(r.Rule, string(counted), string(op), kind).Inc()
		decisions = append(decisions, r.Rule+"="+string(r.Action))
		line := r.Rule + ": " + r.Field + ": " + r.Message
		switch r.Action {
		case config.ActionDeny:
			denials = append(denials, line)
		case config.ActionWarn:
			warnings = append(warnings, line)
		case config.ActionDryRun:
			// The record the dry-run audit mode exists for: what enforcing
			// the policy would have done to this request.
			log.Info("dryrun violation", "rule", r.Rule, "intendedAction", r.Intended, "field", r.Field, "message", r.Message)
		}
	}
	if v.Silent && len(warnings) > 0 {
		// Kept from the requester, but a mistyped exemption must surface
		// before enforcement turns it into a denial.
		log.Info("dryrun warnings", "warnings", warnings)
		warnings = nil
	}
	if len(v.Results) == 0 {
		j.metrics.Decisions.WithLabelValues("none", "allow", string(op), kind).Inc()
	}
	log.V(1).Info("decision", "denied", len(denials) > 0, "results", decisions)
	if len(denials) == 0 {
		return warnings, nil
	}
	noun := "rule"
	if len(denials) > 1 {
		noun = "rules"
	}
	return warnings, fmt.Errorf("%s %q violates %d stateguard %s:\n%s", kind, obj.GetName(), len(denials), noun, strings.Join(denials, "\n"))
}

// judgeFailed logs and counts a failure to judge. It is an internal error
// (500) that refuses the write, except under dryrun enforcement, which
// never blocks a write, not even when stateguard itself fails.
func (j *judge) judgeFailed(log logr.Logger, kind string, op admissionv1.Operation, obj metav1.Object, err error) error {
	log.Error(err, "could not judge")
	j.metrics.Decisions.WithLabelValues("none", "error", string(op), kind).Inc()
	if j.policy.Engine().Enforcement() == config.ActionDryRun {
		return nil
	}
	return apierrors.NewInternalError(fmt.Errorf("stateguard could not judge %s %s/%s: %w", kind, obj.GetNamespace(), obj.GetName(), err))
}

// validator judges writes of one kind with an engine method: the
// admission.Validator the typed handlers call. DELETE is never judged.
type validator[T metav1.Object] struct {
	*judge
	kind    string
	verdict func(e *engine.Engine, ctx context.Context, op admissionv1.Operation, obj, old T, lk engine.Lookup) (engine.Verdict, error)
}

func (v validator[T]) validate(ctx context.Context, op admissionv1.Operation, obj, old T) (admission.Warnings, error) {
	verdict, err := v.verdict(v.policy.Engine(), ctx, op, obj, old, v.lookup)
	return v.answer(v.kind, op, obj, verdict, err)
}

func (v validator[T]) ValidateCreate(ctx context.Context, obj T) (admission.Warnings, error) {
	var none T
	return v.validate(ctx, admissionv1.Create, obj, none)
}

func (v validator[T]) ValidateUpdate(ctx context.Context, old, obj T) (admission.Warnings, error) {
	return v.validate(ctx, admissionv1.Update, obj, old)
}

func (validator[T]) ValidateDelete(context.Context, T) (admission.Warnings, error) { return nil, nil }

// statefulSets defaults StatefulSets.
type statefulSets struct{ *judge }

var _ admission.Defaulter[*appsv1.StatefulSet] = statefulSets{}

// Default applies the configured defaults; statefulSetPatch turns what it
// changed into the answer's patch.
func (h statefulSets) Default(ctx context.Context, obj *appsv1.StatefulSet) error {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return err
	}
	var old *appsv1.StatefulSet
	if req.Operation == admissionv1.Update {
		old = &appsv1.StatefulSet{}
		if err := decodeObject(req.OldObject, old); err != nil {
			return apierrors.NewBadRequest(err.Error())
		}
	}
	changed, warnings, err := h.policy.Engine().DefaultStatefulSet(ctx, req.Operation, obj, old, h.lookup)
	if err != nil {
		h.log.Error(err, "could not default", "namespace", obj.Namespace, "name", obj.Name)
		return apierrors.NewInternalError(err)
	}
	if len(changed) > 0 || len(warnings) > 0 {
		h.log.V(1).Info("defaulted", "namespace", obj.Namespace, "name", obj.Name, "operation", req.Operation, "fields", changed, "warnings", warnings)
	}
	return nil
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
	scale := &autoscalingv1.Scale{}
	if err := decodeObject(req.Object, scale); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	dep := &appsv1.Deployment{}
	if err := h.live.Get(ctx, client.ObjectKey{Namespace: req.Namespace, Name: req.Name}, dep); err != nil {
		if apierrors.IsNotFound(err) {
			return admission.Allowed("")
		}
		if err := h.judgeFailed(h.log.WithValues("kind", "Scale", "namespace", req.Namespace, "name", req.Name), "Scale", req.Operation, dep, err); err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
		return admission.Allowed("")
	}
	v, err := h.policy.Engine().Scale(ctx, req.Operation, scale, dep, h.lookup)
	warnings, err := h.answer("Scale", req.Operation, dep, v, err)
	var status apierrors.APIStatus
	switch {
	case errors.As(err, &status):
		return admission.Errored(status.Status().Code, err).WithWarnings(warnings...)
	case err != nil:
		return admission.Denied(err.Error()).WithWarnings(warnings...)
	}
	return admission.Allowed("").WithWarnings(warnings...)
}
