package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/stateguard/stateguard/internal/commalist"
)

// Exemption exempts the workloads it matches from some rules. Exemptions
// live in the configuration: whoever may change the policy grants them.
// An HPA or a scale request is judged as its Deployment, and matched as it.
type Exemption struct {
	Name  string
	Rules []string // rule IDs, or "all"
	// Each list, when not empty, must match: names may hold '*'.
	Namespaces, Kinds, Names []string
	// Selector, when set, must match the workload's labels.
	Selector labels.Selector
	Reason   string
	// Expires, when set, is when the exemption stops applying.
	Expires time.Time
}

// ObjectExemptions say whether, and for whom, the annotation
// stateguard.io/exempt on a workload is honoured.
type ObjectExemptions struct {
	Allowed bool
	// Grantors may exempt an object with the annotation: a requester
	// in one of the Groups or named in Users (a ServiceAccount is the
	// user system:serviceaccount:NAMESPACE:NAME).
	Groups, Users []string
}

// Requester is who asks for an admission: the AdmissionReview's userInfo.
type Requester struct {
	Username string
	Groups   []string
}

type requesterKey struct{}

// WithRequester says who asks; the annotation stateguard.io/exempt is
// honoured only for grantors. Without a requester (check, audit: nobody
// asks) it is honoured whenever the configuration allows it.
func WithRequester(ctx context.Context, r Requester) context.Context {
	return context.WithValue(ctx, requesterKey{}, r)
}

func requesterFrom(ctx context.Context) (Requester, bool) {
	r, ok := ctx.Value(requesterKey{}).(Requester)
	return r, ok
}

// compiledExemption is an Exemption with its name patterns compiled.
type compiledExemption struct {
	*Exemption
	namespaces, names []namePattern
}

func compileExemptions(xs []Exemption) []compiledExemption {
	out := make([]compiledExemption, len(xs))
	for i := range xs {
		c := compiledExemption{Exemption: &xs[i]}
		for _, n := range xs[i].Namespaces {
			c.namespaces = append(c.namespaces, compileNamePattern(n))
		}
		for _, n := range xs[i].Names {
			c.names = append(c.names, compileNamePattern(n))
		}
		out[i] = c
	}
	return out
}

func (c compiledExemption) matches(kind string, obj metav1.Object) bool {
	return matchesAny(c.namespaces, obj.GetNamespace()) && matchesAny(c.names, obj.GetName()) &&
		(len(c.Kinds) == 0 || slices.Contains(c.Kinds, kind)) &&
		(c.Selector == nil || c.Selector.Matches(labels.Set(obj.GetLabels())))
}

func matchesAny(patterns []namePattern, s string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if p.match(s) {
			return true
		}
	}
	return false
}

func (c compiledExemption) covers(rule string) bool {
	return slices.Contains(c.Rules, "all") || slices.Contains(c.Rules, rule)
}

// exemptions are what exempts one workload from which rules.
type exemptions struct {
	policy  []compiledExemption // matching and in force
	expired []compiledExemption // matching, but expired
	// annotation holds the rules of the annotation when it is honoured;
	// ignored holds them when it is not, and why.
	annotation, ignored ruleSet
	why                 string
}

// exemptionsOf finds what exempts obj, of kind (StatefulSet or
// Deployment), from which rules.
func (e *Engine) exemptionsOf(ctx context.Context, kind string, obj metav1.Object) exemptions {
	var x exemptions
	now := e.now()
	for _, c := range e.exemptions {
		if !c.matches(kind, obj) {
			continue
		}
		if !c.Expires.IsZero() && !now.Before(c.Expires) {
			x.expired = append(x.expired, c)
		} else {
			x.policy = append(x.policy, c)
		}
	}
	value, ok := obj.GetAnnotations()[AnnotationExempt]
	if !ok {
		return x
	}
	var rules ruleSet
	for _, r := range commalist.Split(value) {
		rules.all = rules.all || r == "all"
		rules.rules = append(rules.rules, r)
	}
	oe := e.settings.ObjectExemptions
	requester, asked := requesterFrom(ctx)
	switch {
	case !oe.Allowed:
		x.ignored, x.why = rules, "object exemptions are off"
	case len(oe.Groups) == 0 && len(oe.Users) == 0:
		x.ignored, x.why = rules, "nobody may exempt an object (objectExemptionGrantors is empty)"
	case asked && !oe.grants(requester):
		x.ignored, x.why = rules, fmt.Sprintf("%s may not exempt an object (%s may)", requester.Username, oe.grantors())
	default:
		x.annotation = rules
	}
	return x
}

// by says what exempts the workload from rule, if anything does.
func (x exemptions) by(rule string) (string, bool) {
	for _, c := range x.policy {
		if c.covers(rule) {
			return fmt.Sprintf("exemption %q: %s", c.Name, c.Reason), true
		}
	}
	if x.annotation.has(rule) {
		return "annotation " + AnnotationExempt, true
	}
	return "", false
}

// warnings explain, for the violations not exempt, an annotation that was
// ignored and the exemptions that expired.
func (x exemptions) warnings(kind string, obj metav1.Object, vs []violation) []string {
	var warnings []string
	var ignored []string
	for _, v := range vs {
		if _, exempt := x.by(v.rule); exempt {
			continue
		}
		if x.ignored.has(v.rule) && !slices.Contains(ignored, v.rule) {
			ignored = append(ignored, v.rule)
		}
		for _, c := range x.expired {
			if c.covers(v.rule) {
				w := fmt.Sprintf("exemption %q expired at %s: it no longer exempts %s", c.Name, c.Expires.UTC().Format(time.RFC3339), v.rule)
				if !slices.Contains(warnings, w) {
					warnings = append(warnings, w)
				}
			}
		}
	}
	if len(ignored) > 0 {
		warnings = append(warnings, fmt.Sprintf("annotation %s is ignored: %s; the platform team grants exemptions in stateguard's policy, as: exemptions: [{name: %s, namespaces: [%s], kinds: [%s], names: [%s], rules: [%s], reason: ...}]",
			AnnotationExempt, x.why, strings.ToLower(kind)+"-"+obj.GetNamespace()+"-"+obj.GetName(), obj.GetNamespace(), kind, obj.GetName(), strings.Join(ignored, ", ")))
	}
	return warnings
}

func (o ObjectExemptions) grants(r Requester) bool {
	return slices.Contains(o.Users, r.Username) || slices.ContainsFunc(r.Groups, func(g string) bool { return slices.Contains(o.Groups, g) })
}

// grantors names who may exempt an object with the annotation.
func (o ObjectExemptions) grantors() string {
	var who []string
	for _, g := range o.Groups {
		who = append(who, "group "+g)
	}
	who = append(who, o.Users...)
	return "only " + strings.Join(who, ", ")
}
