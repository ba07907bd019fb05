// Package engine judges StatefulSets, Deployments, Scales and
// HorizontalPodAutoscalers against stateguard's rules and applies its
// StatefulSet defaults. It is pure: objects and a Lookup in, results out.
// The admission webhook, `stateguard check` and `stateguard audit` all call it.
package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/stateguard/stateguard/internal/commalist"
)

// Annotations read or written by the engine.
const (
	AnnotationEnforcement              = "stateguard.io/enforcement"
	AnnotationPodManagementPolicy      = "stateguard.io/pod-management-policy"
	AnnotationRetentionWhenDeleted     = "stateguard.io/pvc-retention-when-deleted"
	AnnotationRetentionWhenScaled      = "stateguard.io/pvc-retention-when-scaled"
	AnnotationExempt                   = "stateguard.io/exempt"
	AnnotationScratchVolumes           = "stateguard.io/scratch-volumes"
	AnnotationDataVolumes              = "stateguard.io/data-volumes"
	AnnotationDefaulted                = "stateguard.io/defaulted"
	AnnotationLastAppliedConfiguration = "kubectl.kubernetes.io/last-applied-configuration"
)

// Lookup finds the objects the rules depend on. A missing object is
// (nil, nil); an error means the lookup itself failed.
type Lookup interface {
	Service(ctx context.Context, namespace, name string) (*corev1.Service, error)
	PersistentVolumeClaim(ctx context.Context, namespace, name string) (*corev1.PersistentVolumeClaim, error)
	Deployment(ctx context.Context, namespace, name string) (*appsv1.Deployment, error)
	// HorizontalPodAutoscalers returns the HPAs whose scaleTargetRef names
	// the workload of kind (Deployment or StatefulSet).
	HorizontalPodAutoscalers(ctx context.Context, namespace, kind, name string) ([]*autoscalingv2.HorizontalPodAutoscaler, error)
	Namespace(ctx context.Context, name string) (*corev1.Namespace, error)
}

// Result is one violation of one object with its effective action. It is
// the engine's answer, not an output format: the webhook, check and audit
// each turn it into theirs.
type Result struct {
	Rule      string
	Action    Action
	Kind      string
	Namespace string
	Name      string
	Field     *field.Path
	Message   string
	// Intended is the action before the global and namespace enforcement
	// caps: what a dryrun result would have been once enforced.
	Intended Action
	// Exemption says what exempts an exempt result: a policy exemption
	// with its reason, or the object's annotation.
	Exemption string
}

// Verdict is the engine's answer for one object.
type Verdict struct {
	Results []Result
	// Warnings are problems with stateguard's own annotations on the object
	// or its namespace (an unknown rule, an unsupported value); they never deny.
	Warnings []string
	// Silent is set when enforcement is dryrun for the object: the requester
	// is told nothing, not even the Warnings.
	Silent bool
}

// Denied reports whether any result is at deny.
func (v Verdict) Denied() bool {
	for _, r := range v.Results {
		if r.Action == ActionDeny {
			return true
		}
	}
	return false
}

// Engine applies one configuration. It is safe for concurrent use.
type Engine struct {
	settings     Settings
	scratchPaths []string
	dataPaths    []string
	dataNames    []namePattern
	exemptions   []compiledExemption
	catalogue    []imageEntry
	// imagesByLastSegment and imagesWithWildcards find an image's entry.
	imagesByLastSegment map[string][]imageCandidate
	imagesWithWildcards []imageCandidate
	now                 func() time.Time // when exemptions expire
}

// New compiles validated settings (from a config.Config).
func New(s Settings) *Engine {
	e := &Engine{settings: s, exemptions: compileExemptions(s.Exemptions), now: time.Now}
	if s.DataDirectories == nil {
		s.DataDirectories = BuiltinCatalogue().DataDirectories
	}
	e.catalogue = compileCatalogue(s.DataDirectories)
	e.indexImages()
	e.scratchPaths = cleanPaths(s.ScratchPaths)
	e.dataPaths = cleanPaths(s.DataPaths)
	for _, n := range s.DataVolumeNames {
		e.dataNames = append(e.dataNames, compileNamePattern(n))
	}
	return e
}

// Enforcement is the global cap of the configuration.
func (e *Engine) Enforcement() Action { return e.settings.Enforcement }

func (e *Engine) enabled(rule string) bool { return e.settings.Actions[rule] != ActionOff }

// Enabled says whether the policy judges a rule at all (its action is not off).
func (e *Engine) Enabled(rule string) bool { return e.enabled(rule) }

// violation is a rule's finding before actions are resolved.
type violation struct {
	rule string
	// key identifies the violation across an UPDATE independently of list
	// indexes, so an old violation is recognised after fields move.
	key string
	// degree measures how bad it is where that can grow (the replicas
	// sharing a claim): an UPDATE that raises it is judged as new.
	degree  int32
	field   *field.Path
	message string
	// advisory findings (dead config, a claim that cannot be judged yet) are
	// at most warnings.
	advisory bool
}

// predates reports whether old holds v already, at least as bad: then the
// UPDATE did not cause it, and it is only a warning.
func (v violation) predates(old []violation) bool {
	for _, o := range old {
		if o.key == v.key && o.degree >= v.degree {
			return true
		}
	}
	return false
}

var actionRank = map[Action]int{ActionDryRun: 1, ActionWarn: 2, ActionDeny: 3}

func capAction(a, limit Action) Action {
	if actionRank[limit] < actionRank[a] {
		return limit
	}
	return a
}

// resolve turns violations into results: the rule's action, lowered to a
// warning for advisory findings and for violations the old object already
// had at least as bad, capped by the namespace and global enforcement, and marked exempt
// where an exemption of the policy, or the object's annotation, allows.
func (e *Engine) resolve(ctx context.Context, kind string, obj metav1.Object, vs, old []violation, lk Lookup) (Verdict, error) {
	return e.resolveAs(ctx, kind, obj, kind, obj, vs, old, lk)
}

// resolveAs resolves the violations of obj as those of the workload
// subject of subjectKind: its exemptions apply (an HPA's are its
// Deployment's).
func (e *Engine) resolveAs(ctx context.Context, kind string, obj metav1.Object, subjectKind string, subject metav1.Object, vs, old []violation, lk Lookup) (Verdict, error) {
	v := Verdict{Warnings: exemptionWarnings(obj)}
	if len(vs) == 0 && len(v.Warnings) == 0 {
		return v, nil
	}
	limit := e.settings.Enforcement
	ns, err := lk.Namespace(ctx, obj.GetNamespace())
	if err != nil {
		return v, fmt.Errorf("looking up namespace %q: %w", obj.GetNamespace(), err)
	}
	if ns != nil {
		if a, ok := ns.Annotations[AnnotationEnforcement]; ok {
			switch Action(a) {
			case ActionDeny, ActionWarn, ActionDryRun:
				limit = capAction(limit, Action(a))
			default:
				v.Warnings = append(v.Warnings, fmt.Sprintf("namespace %q: annotation %s: unsupported value %q: must be one of deny, warn, dryrun; ignored", ns.Name, AnnotationEnforcement, a))
			}
		}
	}
	v.Silent = limit == ActionDryRun
	exempt := e.exemptionsOf(ctx, subjectKind, subject)
	var judged []violation
	for _, x := range vs {
		intended := e.settings.Actions[x.rule]
		if intended == ActionOff {
			continue
		}
		judged = append(judged, x)
		if x.advisory || x.predates(old) {
			intended = capAction(intended, ActionWarn)
		}
		a := capAction(intended, limit)
		by, isExempt := exempt.by(x.rule)
		if isExempt {
			a, intended = ActionExempt, ActionExempt
		}
		v.Results = append(v.Results, Result{
			Rule: x.rule, Action: a, Kind: kind,
			Namespace: obj.GetNamespace(), Name: obj.GetName(),
			Field: x.field, Message: x.message, Intended: intended, Exemption: by,
		})
	}
	v.Warnings = append(v.Warnings, exempt.warnings(subjectKind, subject, judged)...)
	return v, nil
}

type ruleSet struct {
	all   bool
	rules []string
}

func (s ruleSet) has(rule string) bool {
	if s.all {
		return true
	}
	for _, r := range s.rules {
		if r == rule {
			return true
		}
	}
	return false
}

// exemptionWarnings names the unknown rule IDs in stateguard.io/exempt.
func exemptionWarnings(obj metav1.Object) []string {
	value, ok := obj.GetAnnotations()[AnnotationExempt]
	if !ok {
		return nil
	}
	var warnings []string
	for _, r := range commalist.Split(value) {
		if _, known := LookupRule(r); r != "all" && !known {
			warnings = append(warnings, fmt.Sprintf("annotation %s: unknown rule %q: must be \"all\" or one of %s", AnnotationExempt, r, strings.Join(RuleIDs(), ", ")))
		}
	}
	return warnings
}

// judgeWithOld judges the new state and, when that finds violations and
// there is an old state to compare with, the old state too.
func judgeWithOld[T any](judge func(T) ([]violation, error), obj, old T, hasOld bool) (vs, oldVs []violation, err error) {
	if vs, err = judge(obj); err != nil || len(vs) == 0 || !hasOld {
		return vs, nil, err
	}
	oldVs, err = judge(old)
	return vs, oldVs, err
}

// Field paths the rules report, built on only when a rule finds something.
var (
	specPath     = field.NewPath("spec")
	podSpecPath  = specPath.Child("template", "spec")
	podLabelPath = specPath.Child("template", "metadata", "labels")
	// serviceNamePath is built once: every StatefulSet judged may report it.
	serviceNamePath = specPath.Child("serviceName")
)
