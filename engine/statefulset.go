package engine

import (
	"context"
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/stateguard/stateguard/internal/commalist"
)

// StatefulSet judges a StatefulSet: created when old is nil, else updated from old.
func (e *Engine) StatefulSet(ctx context.Context, sts, old *appsv1.StatefulSet, lk Lookup) (Verdict, error) {
	vs, oldVs, err := judgeWithOld(func(s *appsv1.StatefulSet) ([]violation, error) {
		return e.statefulSetViolations(ctx, s, old != nil, lk)
	}, sts, old, old != nil)
	if err != nil {
		return Verdict{}, err
	}
	return e.resolve(ctx, "StatefulSet", sts, vs, oldVs, lk)
}

func (e *Engine) statefulSetViolations(ctx context.Context, sts *appsv1.StatefulSet, update bool, lk Lookup) ([]violation, error) {
	var vs []violation
	for _, r := range Rules {
		if r.statefulSet == nil || !e.enabled(r.ID) {
			continue
		}
		found, err := r.statefulSet(e, ctx, sts, update, lk)
		if err != nil {
			return nil, err
		}
		vs = append(vs, found...)
	}
	return vs, nil
}

const exemptHeadlessHint = "; if the Pods need no stable DNS names, ask the platform team for an exemption from " + RuleHeadlessService + " in stateguard's policy"

// headlessService judges the Service of spec.serviceName. Its fixes on an
// UPDATE leave spec.serviceName alone: it is immutable.
func headlessService(_ *Engine, ctx context.Context, sts *appsv1.StatefulSet, update bool, lk Lookup) ([]violation, error) {
	const rule = RuleHeadlessService
	var vs []violation
	add := func(key string, field *field.Path, msg string) {
		vs = append(vs, violation{rule: rule, key: rule + "/" + key, field: field, message: msg + exemptHeadlessHint})
	}
	name, ns := sts.Spec.ServiceName, sts.Namespace
	if name == "" {
		fix := "set it to the name of a headless Service (clusterIP: None) whose selector matches spec.template.metadata.labels"
		if update {
			fix = "spec.serviceName cannot change on an existing StatefulSet: delete it with --cascade=orphan (its Pods and claims stay) and create it again with spec.serviceName set to a headless Service (clusterIP: None) whose selector matches spec.template.metadata.labels"
		}
		add("empty", serviceNamePath, "is empty, so the Pods get no stable DNS names: "+fix)
		return vs, nil
	}
	svc, err := lk.Service(ctx, ns, name)
	if err != nil {
		return nil, fmt.Errorf("looking up Service %s/%s: %w", ns, name, err)
	}
	if svc == nil {
		fix := ", or set spec.serviceName to an existing one"
		if update {
			fix = " (spec.serviceName cannot change on an existing StatefulSet)"
		}
		add("missing", serviceNamePath, fmt.Sprintf("Service %q not found in namespace %q, so the Pods get no stable DNS names: create a headless Service (clusterIP: None) named %q whose selector matches spec.template.metadata.labels%s", name, ns, name, fix))
		return vs, nil
	}
	recreate := "point spec.serviceName at a Service with type: ClusterIP and clusterIP: None"
	if update {
		recreate = "delete Service %[1]q and create it again with type: ClusterIP and clusterIP: None (spec.serviceName cannot change on an existing StatefulSet)"
		recreate = fmt.Sprintf(recreate, name)
	}
	if svc.Spec.Type != "" && svc.Spec.Type != corev1.ServiceTypeClusterIP {
		add("not-headless", serviceNamePath, fmt.Sprintf("Service %q in namespace %q is not headless (type %s): %s", name, ns, svc.Spec.Type, recreate))
	} else if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		ip := svc.Spec.ClusterIP
		if ip == "" {
			ip = "not set, so one is allocated"
		}
		fix := "set clusterIP: None (clusterIP cannot change on an existing Service: create a separate headless Service and point spec.serviceName at it)"
		if update {
			fix = recreate + "; clients that need a virtual IP can use a second, ordinary Service"
		}
		add("not-headless", serviceNamePath, fmt.Sprintf("Service %q in namespace %q is not headless (clusterIP %s): %s", name, ns, ip, fix))
	}
	if len(svc.Spec.Selector) == 0 {
		add("selector", serviceNamePath, fmt.Sprintf("Service %q in namespace %q has no selector, so it publishes no DNS records for the Pods: set its selector to labels of spec.template.metadata.labels", name, ns))
	} else if missing := unmatchedSelector(svc.Spec.Selector, sts.Spec.Template.Labels); missing != "" {
		fix := "or point spec.serviceName at a Service that selects the Pods"
		if update {
			fix = fmt.Sprintf("or change the selector of Service %q to labels the Pods have", name)
		}
		add("selector", podLabelPath, fmt.Sprintf("Service %q in namespace %q selects %s, which the Pod template lacks, so the Pods get no DNS records: add the labels to spec.template.metadata.labels, %s", name, ns, missing, fix))
	}
	return vs, nil
}

// unmatchedSelector lists, sorted, the selector pairs the labels lack; "" when all match.
func unmatchedSelector(selector, labels map[string]string) string {
	var missing []string
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			missing = append(missing, k+"="+v)
		}
	}
	sort.Strings(missing)
	return strings.Join(missing, ", ")
}

func (e *Engine) emptyDirData(_ context.Context, sts *appsv1.StatefulSet, _ bool, _ Lookup) ([]violation, error) {
	const rule = RuleEmptyDirData
	var vs []violation
	pod := &sts.Spec.Template.Spec
	for i := range pod.Volumes {
		v := &pod.Volumes[i]
		if isPodScoped(v) && hasClaimTemplate(sts, v.Name) {
			vs = append(vs, violation{
				rule: rule, key: rule + "/shadowed/" + v.Name, advisory: true,
				field:   podSpecPath.Child("volumes").Index(i),
				message: fmt.Sprintf("volume %q is replaced by the volumeClaimTemplate of the same name, so its %s source is never used: remove it from spec.template.spec.volumes", v.Name, sourceName(v)),
			})
		}
	}
	for i := range pod.InitContainers {
		if c := &pod.InitContainers[i]; c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			vs = e.dataMounts(sts, c, "initContainers", i, vs)
		}
	}
	for i := range pod.Containers {
		vs = e.dataMounts(sts, &pod.Containers[i], "containers", i, vs)
	}
	return vs, nil
}

// dataMounts adds a violation for each read-write mount of a Pod-scoped
// volume that holds data by path, name or annotation and is not scratch.
// The container is element index of the Pod spec's list.
func (e *Engine) dataMounts(sts *appsv1.StatefulSet, c *corev1.Container, list string, index int, vs []violation) []violation {
	const rule = RuleEmptyDirData
	for j := range c.VolumeMounts {
		m := &c.VolumeMounts[j]
		if m.ReadOnly {
			continue
		}
		v := findVolume(sts.Spec.Template.Spec.Volumes, m.Name)
		if v == nil || !isPodScoped(v) || hasClaimTemplate(sts, v.Name) || e.isScratch(sts, v, m) {
			continue
		}
		reason := e.dataReason(sts, v, m)
		if reason == "" {
			continue
		}
		vs = append(vs, violation{
			rule:  rule,
			key:   rule + "/" + c.Name + "/" + v.Name + "/" + m.MountPath,
			field: podSpecPath.Child(list).Index(index).Child("volumeMounts").Index(j),
			message: fmt.Sprintf("%s volume %q is mounted read-write at %s (%s), and its data is lost when the Pod is deleted: "+
				"move it to spec.volumeClaimTemplates (a claim template named %q replaces the volume), "+
				"or, if it only holds scratch data, name it in the annotation %s",
				sourceName(v), v.Name, m.MountPath, reason, v.Name, AnnotationScratchVolumes),
		})
	}
	return vs
}

func (e *Engine) isScratch(sts *appsv1.StatefulSet, v *corev1.Volume, m *corev1.VolumeMount) bool {
	if v.EmptyDir != nil && v.EmptyDir.Medium == corev1.StorageMediumMemory {
		return true
	}
	if _, ok := underAny(m.MountPath, e.scratchPaths); ok {
		return true
	}
	return commalist.Contains(sts.Annotations[AnnotationScratchVolumes], v.Name)
}

// dataReason says why a mount holds data, or "" when nothing says it does.
func (e *Engine) dataReason(sts *appsv1.StatefulSet, v *corev1.Volume, m *corev1.VolumeMount) string {
	if base, ok := underAny(m.MountPath, e.dataPaths); ok {
		return "under data path " + base
	}
	for _, p := range e.dataNames {
		if p.match(v.Name) {
			if p.source == v.Name {
				return fmt.Sprintf("%q is a data volume name", v.Name)
			}
			return fmt.Sprintf("its name matches data volume name %q", p.source)
		}
	}
	if commalist.Contains(sts.Annotations[AnnotationDataVolumes], v.Name) {
		return "named in the annotation " + AnnotationDataVolumes
	}
	return ""
}

// isPodScoped reports whether a volume's storage ends with its Pod.
func isPodScoped(v *corev1.Volume) bool { return v.EmptyDir != nil || v.Ephemeral != nil }

func sourceName(v *corev1.Volume) string {
	if v.Ephemeral != nil {
		return "generic ephemeral"
	}
	return "emptyDir"
}

func findVolume(volumes []corev1.Volume, name string) *corev1.Volume {
	for i := range volumes {
		if volumes[i].Name == name {
			return &volumes[i]
		}
	}
	return nil
}

func hasClaimTemplate(sts *appsv1.StatefulSet, name string) bool {
	for i := range sts.Spec.VolumeClaimTemplates {
		if sts.Spec.VolumeClaimTemplates[i].Name == name {
			return true
		}
	}
	return false
}
