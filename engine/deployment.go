package engine

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Deployment judges a Deployment: created when old is nil, else updated from old.
func (e *Engine) Deployment(ctx context.Context, dep, old *appsv1.Deployment, lk Lookup) (Verdict, error) {
	vs, oldVs, err := judgeWithOld(func(d *appsv1.Deployment) ([]violation, error) {
		b, err := deploymentBound(ctx, d, replicasOf(d), nil, lk)
		if err != nil {
			return nil, err
		}
		return e.deploymentViolations(ctx, d, b, lk)
	}, dep, old, old != nil)
	if err != nil {
		return Verdict{}, err
	}
	return e.resolve(ctx, "Deployment", dep, vs, oldVs, lk)
}

// Scale judges a write of a Deployment's scale subresource: dep is the
// stored Deployment, whose own replica count is what the write changes.
func (e *Engine) Scale(ctx context.Context, scale *autoscalingv1.Scale, dep *appsv1.Deployment, lk Lookup) (Verdict, error) {
	if dep == nil {
		return Verdict{}, nil
	}
	vs, oldVs, err := judgeWithOld(func(replicas int32) ([]violation, error) {
		b, err := deploymentBound(ctx, dep, replicas, nil, lk)
		if err != nil {
			return nil, err
		}
		if b.source == sourceReplicas {
			b.source = sourceScale
		}
		return e.rescaleViolations(ctx, dep, b, specPath.Child("replicas"), lk)
	}, scale.Spec.Replicas, replicasOf(dep), true)
	if err != nil {
		return Verdict{}, err
	}
	return e.resolve(ctx, "Deployment", dep, vs, oldVs, lk)
}

// HorizontalPodAutoscaler judges an HPA write that targets a Deployment:
// its maxReplicas raises the Deployment's replica bound. It is created
// when old is nil, else updated from old.
func (e *Engine) HorizontalPodAutoscaler(ctx context.Context, hpa, old *autoscalingv2.HorizontalPodAutoscaler, lk Lookup) (Verdict, error) {
	if !targetsDeployment(hpa) {
		return Verdict{}, nil
	}
	dep, err := lk.Deployment(ctx, hpa.Namespace, hpa.Spec.ScaleTargetRef.Name)
	if err != nil {
		return Verdict{}, fmt.Errorf("looking up Deployment %s/%s: %w", hpa.Namespace, hpa.Spec.ScaleTargetRef.Name, err)
	}
	if dep == nil {
		return e.resolve(ctx, "HorizontalPodAutoscaler", hpa, nil, nil, lk)
	}
	sameTarget := old != nil && targetsDeployment(old) && old.Spec.ScaleTargetRef.Name == dep.Name
	vs, oldVs, err := judgeWithOld(func(h *autoscalingv2.HorizontalPodAutoscaler) ([]violation, error) {
		b, err := deploymentBound(ctx, dep, replicasOf(dep), h, lk)
		if err != nil {
			return nil, err
		}
		return e.rescaleViolations(ctx, dep, b, specPath.Child("maxReplicas"), lk)
	}, hpa, old, sameTarget)
	if err != nil {
		return Verdict{}, err
	}
	// What the HPA does to its Deployment is the Deployment's to exempt:
	// an HPA scaling an exempt Deployment is not refused for it.
	return e.resolveAs(ctx, "HorizontalPodAutoscaler", hpa, "Deployment", dep, vs, oldVs, lk)
}

func targetsDeployment(hpa *autoscalingv2.HorizontalPodAutoscaler) bool {
	_, ok := ScaledDeployment(hpa)
	return ok
}

// ScaledDeployment returns the name of the Deployment an HPA scales, if its
// scaleTargetRef names one.
func ScaledDeployment(hpa *autoscalingv2.HorizontalPodAutoscaler) (string, bool) {
	kind, name, ok := ScaledWorkload(hpa)
	return name, ok && kind == "Deployment"
}

// ScaledWorkload returns the kind (Deployment or StatefulSet) and name of
// the workload an HPA scales, if its scaleTargetRef names one. Lookups
// index HPAs by it.
func ScaledWorkload(hpa *autoscalingv2.HorizontalPodAutoscaler) (kind, name string, ok bool) {
	ref := hpa.Spec.ScaleTargetRef
	if (ref.Kind != "Deployment" && ref.Kind != "StatefulSet") || ref.Name == "" {
		return "", "", false
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil || (gv.Group != "apps" && gv.Group != "extensions") {
		return "", "", false
	}
	return ref.Kind, ref.Name, true
}

func replicasOf(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// bound is the most replicas a Deployment may run, and what says so.
type bound struct {
	n      int32
	source string // sourceReplicas, sourceScale, or the name of an HPA
}

const (
	sourceReplicas = "spec.replicas"
	sourceScale    = "the scale request"
)

func (b bound) String() string {
	n := strconv.Itoa(int(b.n))
	switch b.source {
	case sourceReplicas:
		return "spec.replicas is " + n
	case sourceScale:
		return "the scale request sets " + n + " replicas"
	}
	return fmt.Sprintf("HorizontalPodAutoscaler %q may scale to %s replicas", b.source, n)
}

// fix names the change that brings the bound back to one replica.
func (b bound) fix() string {
	if b.source == sourceReplicas || b.source == sourceScale {
		return "run 1 replica"
	}
	return fmt.Sprintf("set maxReplicas of HorizontalPodAutoscaler %q to 1", b.source)
}

// deploymentBound is the largest of replicas and the maxReplicas of every
// HPA that targets the Deployment. judged, when set, is an HPA being
// written: it replaces the stored HPA of the same name.
func deploymentBound(ctx context.Context, dep *appsv1.Deployment, replicas int32, judged *autoscalingv2.HorizontalPodAutoscaler, lk Lookup) (bound, error) {
	return replicaBound(ctx, "Deployment", dep.Namespace, dep.Name, replicas, judged, lk)
}

// replicaBound is the largest of replicas and the maxReplicas of every HPA
// that targets the workload of kind.
func replicaBound(ctx context.Context, kind, namespace, name string, replicas int32, judged *autoscalingv2.HorizontalPodAutoscaler, lk Lookup) (bound, error) {
	b := bound{n: replicas, source: sourceReplicas}
	hpas, err := lk.HorizontalPodAutoscalers(ctx, namespace, kind, name)
	if err != nil {
		return b, fmt.Errorf("listing HorizontalPodAutoscalers of %s %s/%s: %w", kind, namespace, name, err)
	}
	consider := func(h *autoscalingv2.HorizontalPodAutoscaler) {
		if h.Spec.MaxReplicas > b.n {
			b = bound{n: h.Spec.MaxReplicas, source: h.Name}
		}
	}
	for _, h := range hpas {
		if judged == nil || h.Name != judged.Name {
			consider(h)
		}
	}
	if judged != nil {
		consider(judged)
	}
	return b, nil
}

func (e *Engine) deploymentViolations(ctx context.Context, dep *appsv1.Deployment, b bound, lk Lookup) ([]violation, error) {
	var vs []violation
	for _, r := range Rules {
		if r.deployment == nil || !e.enabled(r.ID) {
			continue
		}
		found, err := r.deployment(e, ctx, dep, b, lk)
		if err != nil {
			return nil, err
		}
		vs = append(vs, found...)
	}
	return vs, nil
}

// rescaleViolations judges a Deployment whose replica bound an HPA or a
// scale request changes, with the rules that depend on the bound alone.
// They are reported at field, the HPA's or the Scale's.
func (e *Engine) rescaleViolations(ctx context.Context, dep *appsv1.Deployment, b bound, field *field.Path, lk Lookup) ([]violation, error) {
	var vs []violation
	for _, r := range Rules {
		if !r.onRescale || !e.enabled(r.ID) {
			continue
		}
		found, err := r.deployment(e, ctx, dep, b, lk)
		if err != nil {
			return nil, err
		}
		for i := range found {
			found[i].field = field
		}
		vs = append(vs, found...)
	}
	return vs, nil
}

// claimVolume is a claim volume of a Deployment's Pod template and what
// its claim allows.
type claimVolume struct {
	index int    // in spec.template.spec.volumes
	claim string // the claim's name
	found bool
	// mode is the access mode that lets one writer at a time use the claim
	// (see singleWriterMode), "" when the replicas may share it.
	mode string
}

// claimVolumes looks up the claim of each claim volume of a Pod template
// in namespace.
func claimVolumes(ctx context.Context, namespace string, pod *corev1.PodSpec, lk Lookup) ([]claimVolume, error) {
	var out []claimVolume
	for i := range pod.Volumes {
		v := &pod.Volumes[i]
		if v.PersistentVolumeClaim == nil {
			continue
		}
		c := claimVolume{index: i, claim: v.PersistentVolumeClaim.ClaimName}
		pvc, err := lk.PersistentVolumeClaim(ctx, namespace, c.claim)
		if err != nil {
			return nil, fmt.Errorf("looking up PersistentVolumeClaim %s/%s: %w", namespace, c.claim, err)
		}
		if pvc != nil {
			c.found, c.mode = true, singleWriterMode(pvc, readOnlyEverywhere(pod, v))
		}
		out = append(out, c)
	}
	return out, nil
}

// sharedClaims finds the single-writer claims that more than one replica
// would mount.
func sharedClaims(_ *Engine, ctx context.Context, dep *appsv1.Deployment, b bound, lk Lookup) ([]violation, error) {
	const rule = RuleSharedRWOPVC
	if b.n <= 1 {
		return nil, nil
	}
	claims, err := claimVolumes(ctx, dep.Namespace, &dep.Spec.Template.Spec, lk)
	if err != nil {
		return nil, err
	}
	var vs []violation
	for _, c := range claims {
		f := podSpecPath.Child("volumes").Index(c.index).Child("persistentVolumeClaim", "claimName")
		switch {
		case !c.found:
			vs = append(vs, violation{
				rule: rule, key: rule + "/missing/" + c.claim, field: f, advisory: true,
				message: fmt.Sprintf("PersistentVolumeClaim %q not found in namespace %q, so whether Deployment %q can share it across %d replicas cannot be checked: create the claim first, or check again once it exists", c.claim, dep.Namespace, dep.Name, b.n),
			})
		case c.mode != "":
			effect := sharingEffect(c.mode)
			vs = append(vs, violation{
				rule: rule, key: rule + "/" + c.claim, degree: b.n, field: f,
				message: fmt.Sprintf("PersistentVolumeClaim %q is %s, but %s and every replica of Deployment %q mounts it: "+
					"%s: %s, use a ReadWriteMany claim, or run the workload as a StatefulSet with volumeClaimTemplates",
					c.claim, c.mode, b, dep.Name, effect, b.fix()),
			})
		}
	}
	return vs, nil
}

// sharingEffect says what replicas sharing a claim of a single-writer
// mode suffer. ReadWriteOncePod admits one Pod cluster-wide: the scheduler
// keeps the others Pending.
func sharingEffect(mode string) string {
	if mode == string(corev1.ReadWriteOncePod) {
		return "only one Pod at a time can use it, so the other replicas stay Pending"
	}
	return "Pods on other nodes fail with Multi-Attach errors, and Pods on one node share one writer's data"
}

// rollingUpdate finds a surge rollout of a one-replica Deployment over a
// single-writer claim, which stalls: the new Pod waits for the volume the old one holds.
func rollingUpdate(_ *Engine, ctx context.Context, dep *appsv1.Deployment, b bound, lk Lookup) ([]violation, error) {
	const rule = RuleRWORollingUpdate
	s := dep.Spec.Strategy
	if b.n != 1 || (s.Type != "" && s.Type != appsv1.RollingUpdateDeploymentStrategyType) {
		return nil, nil
	}
	surge := "25%" // the Kubernetes default
	if s.RollingUpdate != nil && s.RollingUpdate.MaxSurge != nil {
		if isZero(*s.RollingUpdate.MaxSurge) {
			return nil, nil
		}
		surge = s.RollingUpdate.MaxSurge.String()
	}
	all, err := claimVolumes(ctx, dep.Namespace, &dep.Spec.Template.Spec, lk)
	if err != nil {
		return nil, err
	}
	var claims []string
	mode := ""
	for _, c := range all {
		if c.mode != "" {
			claims = append(claims, strconv.Quote(c.claim))
			if mode == "" || c.mode == string(corev1.ReadWriteOncePod) {
				mode = c.mode
			}
		}
	}
	if len(claims) == 0 {
		return nil, nil
	}
	// ReadWriteOncePod admits one Pod; ReadWriteOnce one node, so a new Pod
	// on the old one's node mounts the volume and the rollout goes on.
	stalls := "the rollout stalls whenever the new Pod is scheduled on another node than the old one (the volume attaches to one node at a time)"
	if mode == string(corev1.ReadWriteOncePod) {
		stalls = "the rollout always stalls (the claim admits one Pod at a time)"
	}
	return []violation{{
		rule: rule, key: rule, field: specPath.Child("strategy"),
		message: fmt.Sprintf("a rolling update (maxSurge %s) starts the new Pod before the old one releases %s PersistentVolumeClaim %s, so %s: "+
			"set strategy: {type: Recreate}, or rollingUpdate: {maxSurge: 0, maxUnavailable: 1}",
			surge, mode, strings.Join(claims, ", "), stalls),
	}}, nil
}

// deploymentEmptyDirData finds data a Deployment keeps on Pod-scoped
// volumes: lost at every rollout, eviction or node drain.
func deploymentEmptyDirData(e *Engine, _ context.Context, dep *appsv1.Deployment, _ bound, _ Lookup) ([]violation, error) {
	pod := &dep.Spec.Template.Spec
	w := podTemplate{kind: "Deployment", annotations: dep.Annotations, pod: pod, claimed: func(name string) bool { return isClaim(findVolume(pod.Volumes, name)) }}
	return e.podDataViolations(w, RuleDeploymentEmptyDirData, func(*corev1.Volume) string {
		return "its data is lost whenever the Pod is replaced (every rollout, eviction or node drain): mount a PersistentVolumeClaim there (one replica, strategy Recreate), or run the workload as a StatefulSet with volumeClaimTemplates"
	}), nil
}

func isZero(v intstr.IntOrString) bool {
	if v.Type == intstr.Int {
		return v.IntVal == 0
	}
	s := strings.TrimSuffix(v.StrVal, "%")
	n, err := strconv.Atoi(s)
	return err == nil && n == 0
}

// singleWriterMode returns the access mode that makes a claim
// single-writer ("ReadWriteOncePod" or "ReadWriteOnce"), or "".
// Status modes count once the claim is bound: they are what the volume has.
func singleWriterMode(pvc *corev1.PersistentVolumeClaim, readOnly bool) string {
	modes := pvc.Spec.AccessModes
	if pvc.Status.Phase == corev1.ClaimBound && len(pvc.Status.AccessModes) > 0 {
		modes = pvc.Status.AccessModes
	}
	var rwo, rwop, rwx, rox bool
	for _, m := range modes {
		switch m {
		case corev1.ReadWriteOnce:
			rwo = true
		case corev1.ReadWriteOncePod:
			rwop = true
		case corev1.ReadWriteMany:
			rwx = true
		case corev1.ReadOnlyMany:
			rox = true
		}
	}
	if rox && readOnly {
		return ""
	}
	if rwop {
		return string(corev1.ReadWriteOncePod)
	}
	if rwo && !rwx {
		return string(corev1.ReadWriteOnce)
	}
	return ""
}

// readOnlyEverywhere reports whether every mount of the volume in the Pod
// template is read-only (or the claim volume itself is).
func readOnlyEverywhere(pod *corev1.PodSpec, v *corev1.Volume) bool {
	if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ReadOnly {
		return true
	}
	for _, list := range [][]corev1.Container{pod.InitContainers, pod.Containers} {
		for i := range list {
			for _, m := range list[i].VolumeMounts {
				if m.Name == v.Name && !m.ReadOnly {
					return false
				}
			}
		}
	}
	return true
}
