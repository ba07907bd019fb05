package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/stateguard/stateguard/engine"
)

// Exemption exempts the workloads it matches from rules: the platform
// team's exemptions, granted by whoever may change the policy.
type Exemption struct {
	Name  string   `json:"name"`
	Rules []string `json:"rules"`
	// Each list, when set, must match; names may hold '*'.
	Namespaces []string `json:"namespaces,omitempty"`
	Kinds      []string `json:"kinds,omitempty"`
	Names      []string `json:"names,omitempty"`
	// Selector, when set, must match the workload's labels.
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	Reason   string                `json:"reason"`
	// Expires is a date (2027-01-31: the exemption stops applying when
	// that day begins, UTC) or an RFC 3339 time.
	Expires string `json:"expires,omitempty"`
}

// Grantors may exempt an object with the annotation stateguard.io/exempt,
// when allowObjectExemptions is true.
type Grantors struct {
	Groups []string `json:"groups,omitempty"`
	// ServiceAccounts as NAMESPACE/NAME.
	ServiceAccounts []string `json:"serviceAccounts,omitempty"`
	Users           []string `json:"users,omitempty"`
}

// exemptionKinds are the kinds an exemption matches: an HPA or a scale
// request is judged, and exempted, as its Deployment.
var exemptionKinds = []string{"StatefulSet", "Deployment"}

func parseExpiry(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

func (c *Config) validateExemptions() field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("exemptions")
	names := map[string]bool{}
	for i, x := range c.Exemptions {
		p := p.Index(i)
		switch {
		case x.Name == "":
			errs = append(errs, field.Required(p.Child("name"), "names the exemption in results and logs"))
		case names[x.Name]:
			errs = append(errs, field.Duplicate(p.Child("name"), x.Name))
		}
		names[x.Name] = true
		if len(x.Rules) == 0 {
			errs = append(errs, field.Required(p.Child("rules"), `the rule IDs it exempts from, or "all"`))
		}
		for j, r := range x.Rules {
			if _, ok := engine.LookupRule(r); !ok && r != "all" {
				errs = append(errs, field.NotSupported(p.Child("rules").Index(j), r, append([]string{"all"}, engine.RuleIDs()...)))
			}
		}
		if len(x.Namespaces) == 0 && len(x.Names) == 0 && x.Selector == nil {
			errs = append(errs, field.Required(p, "namespaces, names or a selector: to turn a rule off everywhere, set its action to off"))
		}
		errs = append(errs, validateNamePatterns(p.Child("namespaces"), x.Namespaces)...)
		errs = append(errs, validateNamePatterns(p.Child("names"), x.Names)...)
		for j, k := range x.Kinds {
			if !slices.Contains(exemptionKinds, k) {
				errs = append(errs, field.NotSupported(p.Child("kinds").Index(j), k, exemptionKinds))
			}
		}
		if x.Selector != nil {
			if _, err := metav1.LabelSelectorAsSelector(x.Selector); err != nil {
				errs = append(errs, field.Invalid(p.Child("selector"), x.Selector, err.Error()))
			}
		}
		if strings.TrimSpace(x.Reason) == "" {
			errs = append(errs, field.Required(p.Child("reason"), "why the workloads are exempt: results, logs and reports show it"))
		}
		if x.Expires != "" {
			if _, err := parseExpiry(x.Expires); err != nil {
				errs = append(errs, field.Invalid(p.Child("expires"), x.Expires, "must be a date (2027-01-31) or an RFC 3339 time (2027-01-31T12:00:00Z)"))
			}
		}
	}
	g := field.NewPath("objectExemptionGrantors")
	for i, sa := range c.ObjectExemptionGrantors.ServiceAccounts {
		ns, name, ok := strings.Cut(sa, "/")
		if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
			errs = append(errs, field.Invalid(g.Child("serviceAccounts").Index(i), sa, "must be NAMESPACE/NAME"))
		}
	}
	return errs
}

// users are the Users and the ServiceAccounts' user names.
func (g Grantors) users() []string {
	users := slices.Clone(g.Users)
	for _, sa := range g.ServiceAccounts {
		ns, name, _ := strings.Cut(sa, "/")
		users = append(users, fmt.Sprintf("system:serviceaccount:%s:%s", ns, name))
	}
	return users
}

// engineExemptions are the validated exemptions for the engine.
func (c *Config) engineExemptions() []engine.Exemption {
	out := make([]engine.Exemption, len(c.Exemptions))
	for i, x := range c.Exemptions {
		e := engine.Exemption{Name: x.Name, Rules: x.Rules, Namespaces: x.Namespaces, Kinds: x.Kinds, Names: x.Names, Reason: x.Reason}
		if x.Selector != nil {
			e.Selector, _ = metav1.LabelSelectorAsSelector(x.Selector)
		}
		if x.Expires != "" {
			e.Expires, _ = parseExpiry(x.Expires)
		}
		out[i] = e
	}
	return out
}
