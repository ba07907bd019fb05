package engine

import (
	"context"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
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
	w := podTemplate{kind: "StatefulSet", annotations: sts.Annotations, pod: pod, claimed: func(name string) bool {
		return hasClaimTemplate(sts, name) || isClaim(findVolume(pod.Volumes, name))
	}}
	return append(vs, e.podDataViolations(w, rule, func(v *corev1.Volume) string {
		return fmt.Sprintf("its data is lost when the Pod is deleted: move it to spec.volumeClaimTemplates (a claim template named %q replaces the volume)", v.Name)
	})...), nil
}

// statefulSetSharedClaims finds the single-writer claims that every
// replica of a StatefulSet mounts from its Pod template (an existingClaim
// in a chart's values) instead of a claim of its own from
// volumeClaimTemplates.
func statefulSetSharedClaims(_ *Engine, ctx context.Context, sts *appsv1.StatefulSet, _ bool, lk Lookup) ([]violation, error) {
	const rule = RuleStatefulSetSharedClaim
	if !slices.ContainsFunc(sts.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.PersistentVolumeClaim != nil }) {
		return nil, nil // most StatefulSets: claims from templates only
	}
	replicas := int32(1)
	if sts.Spec.Replicas != nil {
		replicas = *sts.Spec.Replicas
	}
	b, err := replicaBound(ctx, "StatefulSet", sts.Namespace, sts.Name, replicas, nil, lk)
	if err != nil || b.n <= 1 {
		return nil, err
	}
	claims, err := claimVolumes(ctx, sts.Namespace, &sts.Spec.Template.Spec, lk)
	if err != nil {
		return nil, err
	}
	var vs []violation
	for _, c := range claims {
		f := podSpecPath.Child("volumes").Index(c.index).Child("persistentVolumeClaim", "claimName")
		if !c.found {
			vs = append(vs, violation{
				rule: rule, key: rule + "/missing/" + c.claim, field: f, advisory: true,
				message: fmt.Sprintf("PersistentVolumeClaim %q not found in namespace %q, so whether the %d replicas of StatefulSet %q can share it cannot be checked: create the claim first, or give each replica its own with spec.volumeClaimTemplates", c.claim, sts.Namespace, b.n, sts.Name),
			})
			continue
		}
		if c.mode == "" {
			continue
		}
		effect := sharingEffect(c.mode)
		vs = append(vs, violation{
			rule: rule, key: rule + "/" + c.claim, degree: b.n, field: f,
			message: fmt.Sprintf("PersistentVolumeClaim %q is %s, but %s and every replica of StatefulSet %q mounts it: "+
				"%s: give each replica its own claim with spec.volumeClaimTemplates, or %s",
				c.claim, c.mode, b, sts.Name, effect, b.fix()),
		})
	}
	return vs, nil
}

// podDataViolations judges every Pod-scoped volume of a Pod template that
// no claim backs: one violation per volume that holds data, naming each
// container mount that does, at the rule's action when the evidence is
// strong and as a warning when it is one sign. loss says what is lost and
// the fix.
func (e *Engine) podDataViolations(w podTemplate, rule string, loss func(*corev1.Volume) string) []violation {
	var vs []violation
	for i := range w.pod.Volumes {
		v := &w.pod.Volumes[i]
		if !isPodScoped(v) || w.claimed(v.Name) {
			continue
		}
		strongest, reason := noData, ""
		var mounts []string
		eachRunningContainer(w.pod, func(c *corev1.Container) {
			for _, m := range c.VolumeMounts {
				if m.Name != v.Name || m.ReadOnly {
					continue
				}
				t, why := e.judgeMount(w, c, v, &m)
				if t == noData {
					continue
				}
				mounts = append(mounts, fmt.Sprintf("container %q at %s", c.Name, m.MountPath))
				if t > strongest {
					strongest, reason = t, why
				}
			}
		})
		if strongest == noData {
			continue
		}
		vs = append(vs, violation{
			rule: rule, key: rule + "/" + v.Name, advisory: strongest == weakData,
			field: podSpecPath.Child("volumes").Index(i),
			message: fmt.Sprintf("%s volume %q is mounted read-write by %s (%s), and %s; "+
				"if it only holds scratch data, name it in the annotation %s",
				sourceName(v), v.Name, strings.Join(mounts, " and "), reason, loss(v), AnnotationScratchVolumes),
		})
	}
	return vs
}

// eachRunningContainer calls f with each container of a Pod that runs
// beside the others: the containers and the sidecars (init containers
// that keep running). Other init containers finish before the Pod
// starts: what they write is for the containers to keep.
func eachRunningContainer(pod *corev1.PodSpec, f func(*corev1.Container)) {
	for i := range pod.InitContainers {
		if c := &pod.InitContainers[i]; c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			f(c)
		}
	}
	for i := range pod.Containers {
		f(&pod.Containers[i])
	}
}

// dataDirectoryUnmounted finds containers of a known image with no volume
// at the image's data directory: they write their data into the
// container's writable layer, lost whenever the container restarts.
func (e *Engine) dataDirectoryUnmounted(kind string, pod *corev1.PodSpec) []violation {
	const rule = RuleDataDirUnmounted
	var vs []violation
	for _, list := range []struct {
		name       string
		containers []corev1.Container
	}{{"initContainers", pod.InitContainers}, {"containers", pod.Containers}} {
		for i := range list.containers {
			c := &list.containers[i]
			if list.name == "initContainers" && (c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
				continue
			}
			x := e.imageEntryOf(c.Image)
			if x == nil || x.OptionalStorage || x.keepsNoData(c) != "" {
				continue
			}
			var buf [1]string
			dirs := x.dataDirs(c, &buf)
			if mountedNearAny(c, dirs) {
				continue
			}
			fix := "mount a volume claim there (spec.volumeClaimTemplates)"
			if kind == "Deployment" {
				fix = "mount a PersistentVolumeClaim there (one replica, strategy Recreate), or run it as a StatefulSet with volumeClaimTemplates"
			}
			vs = append(vs, violation{
				rule: rule, key: rule + "/" + c.Name,
				field: podSpecPath.Child(list.name).Index(i),
				message: fmt.Sprintf("container %q runs %s, which keeps its data in %s, but no volume is mounted there, so the data is written to the container's own filesystem and lost whenever the container restarts: %s",
					c.Name, repository(c.Image), dirs[0], fix),
			})
		}
	}
	return vs
}

// mountedNearAny reports whether any volume is mounted at one of dirs,
// above it, or under it (where a chart points the image's data, as
// Bitnami's data/).
func mountedNearAny(c *corev1.Container, dirs []string) bool {
	for _, m := range c.VolumeMounts {
		p := path.Clean(m.MountPath)
		for _, dir := range dirs {
			if p == dir || isUnder(dir, p) || isUnder(p, dir) {
				return true
			}
		}
	}
	return false
}

func isClaim(v *corev1.Volume) bool { return v != nil && v.PersistentVolumeClaim != nil }

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
