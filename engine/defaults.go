package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/stateguard/stateguard/internal/commalist"
)

// Names of the defaulted fields, as listed in stateguard.io/defaulted.
const (
	FieldPodManagementPolicy = "podManagementPolicy"
	FieldWhenDeleted         = "persistentVolumeClaimRetentionPolicy.whenDeleted"
	FieldWhenScaled          = "persistentVolumeClaimRetentionPolicy.whenScaled"
)

// defaultable describes one field the mutating webhook defaults.
type defaultable struct {
	// name is the field's path under spec, as manifests write it.
	name       string
	k8sDefault string
	allowed    []string                         // the values a default may set
	annotation string                           // the namespace annotation that overrides the configured value
	get        func(*appsv1.StatefulSet) string // "" when unset
	set        func(*appsv1.StatefulSet, string)
}

var retentionValues = []string{string(appsv1.RetainPersistentVolumeClaimRetentionPolicyType), string(appsv1.DeletePersistentVolumeClaimRetentionPolicyType)}

var defaultables = []defaultable{
	{
		name: FieldPodManagementPolicy, k8sDefault: string(appsv1.OrderedReadyPodManagement),
		allowed:    []string{string(appsv1.OrderedReadyPodManagement), string(appsv1.ParallelPodManagement)},
		annotation: AnnotationPodManagementPolicy,
		get:        func(s *appsv1.StatefulSet) string { return string(s.Spec.PodManagementPolicy) },
		set: func(s *appsv1.StatefulSet, v string) {
			s.Spec.PodManagementPolicy = appsv1.PodManagementPolicyType(v)
		},
	},
	{
		name: FieldWhenDeleted, k8sDefault: string(appsv1.RetainPersistentVolumeClaimRetentionPolicyType),
		allowed: retentionValues, annotation: AnnotationRetentionWhenDeleted,
		get: func(s *appsv1.StatefulSet) string {
			if p := s.Spec.PersistentVolumeClaimRetentionPolicy; p != nil {
				return string(p.WhenDeleted)
			}
			return ""
		},
		set: func(s *appsv1.StatefulSet, v string) {
			retention(s).WhenDeleted = appsv1.PersistentVolumeClaimRetentionPolicyType(v)
		},
	},
	{
		name: FieldWhenScaled, k8sDefault: string(appsv1.RetainPersistentVolumeClaimRetentionPolicyType),
		allowed: retentionValues, annotation: AnnotationRetentionWhenScaled,
		get: func(s *appsv1.StatefulSet) string {
			if p := s.Spec.PersistentVolumeClaimRetentionPolicy; p != nil {
				return string(p.WhenScaled)
			}
			return ""
		},
		set: func(s *appsv1.StatefulSet, v string) {
			retention(s).WhenScaled = appsv1.PersistentVolumeClaimRetentionPolicyType(v)
		},
	},
}

// retention returns the StatefulSet's retention policy, creating it with
// the Kubernetes defaults when absent (as the API server would).
func retention(s *appsv1.StatefulSet) *appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy {
	if s.Spec.PersistentVolumeClaimRetentionPolicy == nil {
		s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
			WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
		}
	}
	return s.Spec.PersistentVolumeClaimRetentionPolicy
}

// validate accepts "" (no default) and the allowed values.
func (d defaultable) validate(p *field.Path, v string) field.ErrorList {
	if v == "" || slices.Contains(d.allowed, v) {
		return nil
	}
	return field.ErrorList{field.NotSupported(p, v, d.allowed)}
}

// ValidateDefault checks a value for the defaulted field name (FieldPodManagementPolicy, ...).
func ValidateDefault(name string, p *field.Path, v string) field.ErrorList {
	for _, d := range defaultables {
		if d.name == name {
			return d.validate(p, v)
		}
	}
	return field.ErrorList{field.InternalError(p, fmt.Errorf("%q is not a defaulted field", name))}
}

// current reads the field, reading an unset one as the Kubernetes default.
func (d defaultable) current(s *appsv1.StatefulSet) string {
	if v := d.get(s); v != "" {
		return v
	}
	return d.k8sDefault
}

// DefaultStatefulSet applies the configured defaults to sts in place and
// returns the names of the fields it changed. On create (old is nil) a
// default replaces the Kubernetes default when nothing shows the user
// chose it; on update the stored value of a field is restored when the
// incoming manifest only omitted it. Applying it twice gives the result of
// applying it once.
func (e *Engine) DefaultStatefulSet(ctx context.Context, sts, old *appsv1.StatefulSet, lk Lookup) (changed, warnings []string, err error) {
	var wanted map[string]string
	if old == nil {
		if wanted, warnings, err = e.wantedDefaults(ctx, sts.Namespace, lk); err != nil {
			return nil, nil, err
		}
	}
	// What the user chose is read from the last-applied annotation and
	// managedFields, the costly part: only once a default could apply.
	var chosen map[string]bool
	for _, d := range defaultables {
		if d.current(sts) != d.k8sDefault {
			continue
		}
		target := wanted[d.name]
		if old != nil {
			target = d.current(old)
		}
		if target == "" || target == d.k8sDefault {
			continue
		}
		if chosen == nil {
			chosen = userSetFields(sts)
		}
		if !chosen[d.name] {
			d.set(sts, target)
			changed = append(changed, d.name)
		}
	}
	if len(changed) > 0 {
		annotateDefaulted(sts, changed)
	}
	return changed, warnings, nil
}

// wantedDefaults returns the configured defaults, overridden by the
// namespace's annotations; bad annotation values become warnings.
func (e *Engine) wantedDefaults(ctx context.Context, namespace string, lk Lookup) (map[string]string, []string, error) {
	wanted := map[string]string{}
	for _, d := range defaultables {
		wanted[d.name] = e.settings.Defaults[d.name]
	}
	ns, err := lk.Namespace(ctx, namespace)
	if err != nil || ns == nil {
		if err != nil {
			err = fmt.Errorf("looking up namespace %q: %w", namespace, err)
		}
		return wanted, nil, err
	}
	var warnings []string
	for _, d := range defaultables {
		v, ok := ns.Annotations[d.annotation]
		if !ok {
			continue
		}
		if errs := d.validate(field.NewPath("metadata", "annotations").Key(d.annotation), v); len(errs) > 0 {
			warnings = append(warnings, fmt.Sprintf("namespace %q: %v; ignored", namespace, errs.ToAggregate()))
			continue
		}
		wanted[d.name] = v
	}
	return wanted, warnings, nil
}

func annotateDefaulted(sts *appsv1.StatefulSet, changed []string) {
	names := map[string]bool{}
	for _, n := range commalist.Split(sts.Annotations[AnnotationDefaulted]) {
		names[n] = true
	}
	for _, n := range changed {
		names[n] = true
	}
	list := make([]string, 0, len(names))
	for n := range names {
		list = append(list, n)
	}
	sort.Strings(list)
	if sts.Annotations == nil {
		sts.Annotations = map[string]string{}
	}
	sts.Annotations[AnnotationDefaulted] = strings.Join(list, ",")
}

// userSetFields returns the defaultable fields the request shows the user
// chose: present in kubectl's last-applied-configuration, or owned by a
// server-side apply (an Apply entry of managedFields).
func userSetFields(sts *appsv1.StatefulSet) map[string]bool {
	chosen := map[string]bool{}
	if raw, ok := sts.Annotations[AnnotationLastAppliedConfiguration]; ok {
		var applied struct {
			Spec map[string]json.RawMessage `json:"spec"`
		}
		if json.Unmarshal([]byte(raw), &applied) == nil {
			markChosen(chosen, applied.Spec, "")
		}
	}
	for _, mf := range sts.ManagedFields {
		if mf.Operation != metav1.ManagedFieldsOperationApply || mf.FieldsV1 == nil {
			continue
		}
		var owned struct {
			Spec map[string]json.RawMessage `json:"f:spec"`
		}
		if json.Unmarshal(mf.FieldsV1.Raw, &owned) == nil {
			markChosen(chosen, owned.Spec, "f:")
		}
	}
	return chosen
}

// markChosen marks the defaultable fields present in a spec; prefix is
// "f:" for the field sets of managedFields, "" for a manifest.
func markChosen(chosen map[string]bool, spec map[string]json.RawMessage, prefix string) {
	for _, d := range defaultables {
		if hasPath(spec, strings.Split(d.name, "."), prefix) {
			chosen[d.name] = true
		}
	}
}

// hasPath reports whether obj holds the nested field path, each name prefixed.
func hasPath(obj map[string]json.RawMessage, path []string, prefix string) bool {
	raw, ok := obj[prefix+path[0]]
	if !ok || len(path) == 1 {
		return ok
	}
	var inner map[string]json.RawMessage
	return json.Unmarshal(raw, &inner) == nil && hasPath(inner, path[1:], prefix)
}
