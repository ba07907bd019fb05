package engine_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/stateguard/stateguard/engine"
)

const (
	rwo  = corev1.ReadWriteOnce
	rwop = corev1.ReadWriteOncePod
	rwx  = corev1.ReadWriteMany
	rox  = corev1.ReadOnlyMany
)

// What the messages say sharing a claim does, and the fixes they name.
const (
	multiAttach   = "Pods on other nodes fail with Multi-Attach errors, and Pods on one node share one writer's data"
	stayPending   = "only one Pod at a time can use it, so the other replicas stay Pending"
	runOneReplica = "run 1 replica"
)

func shared(kind, name, field, claim, mode, bound, effect, fix string, action engine.Action) engine.Result {
	return engine.Result{Rule: engine.RuleSharedRWOPVC, Action: action, Kind: kind, Namespace: "shop", Name: name,
		Field: fieldPath(field),
		Message: fmt.Sprintf(`PersistentVolumeClaim %q is %s, but %s and every replica of Deployment "web" mounts it: `+
			`%s: %s, use a ReadWriteMany claim, or run the workload as a StatefulSet with volumeClaimTemplates`, claim, mode, bound, effect, fix)}
}

func sharedOnDeployment(claim, mode, bound, effect, fix string) engine.Result {
	return shared("Deployment", "web", "spec.template.spec.volumes[0].persistentVolumeClaim.claimName", claim, mode, bound, effect, fix, engine.ActionDeny)
}

func missingClaim(replicas int) engine.Result {
	return engine.Result{Rule: engine.RuleSharedRWOPVC, Action: engine.ActionWarn, Kind: "Deployment", Namespace: "shop", Name: "web",
		Field: fieldPath("spec.template.spec.volumes[0].persistentVolumeClaim.claimName"),
		Message: fmt.Sprintf(`PersistentVolumeClaim "uploads" not found in namespace "shop", so whether Deployment "web" can share it across %d replicas cannot be checked: `+
			`create the claim first, or check again once it exists`, replicas)}
}

func rolling(surge, mode, claims string) engine.Result {
	stalls := "the rollout stalls whenever the new Pod is scheduled on another node than the old one (the volume attaches to one node at a time)"
	if mode == "ReadWriteOncePod" {
		stalls = "the rollout always stalls (the claim admits one Pod at a time)"
	}
	return engine.Result{Rule: engine.RuleRWORollingUpdate, Action: engine.ActionWarn, Kind: "Deployment", Namespace: "shop", Name: "web",
		Field: fieldPath("spec.strategy"),
		Message: fmt.Sprintf(`a rolling update (maxSurge %s) starts the new Pod before the old one releases %s PersistentVolumeClaim %s, so %s: `+
			`set strategy: {type: Recreate}, or rollingUpdate: {maxSurge: 0, maxUnavailable: 1}`, surge, mode, claims, stalls)}
}

func bound(claim *corev1.PersistentVolumeClaim, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	claim.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound, AccessModes: modes}
	return claim
}

func pending(claim *corev1.PersistentVolumeClaim, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	claim.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending, AccessModes: modes}
	return claim
}

func readOnlyMounts(d *appsv1.Deployment) {
	for i := range d.Spec.Template.Spec.Containers[0].VolumeMounts {
		d.Spec.Template.Spec.Containers[0].VolumeMounts[i].ReadOnly = true
	}
}

func TestDeployment(t *testing.T) {
	tests := []struct {
		name    string
		obj     *appsv1.Deployment
		old     *appsv1.Deployment
		objects []any
		want    []engine.Result
	}{
		{
			name:    "three replicas over ReadWriteOnce",
			obj:     deploy("web", ptr[int32](3), recreate, claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo)},
			want:    []engine.Result{sharedOnDeployment("uploads", "ReadWriteOnce", "spec.replicas is 3", multiAttach, runOneReplica)},
		},
		{
			name:    "two replicas over ReadWriteOncePod",
			obj:     deploy("web", ptr[int32](2), recreate, claimVolume("uploads")),
			objects: []any{pvc("uploads", rwop)},
			want:    []engine.Result{sharedOnDeployment("uploads", "ReadWriteOncePod", "spec.replicas is 2", stayPending, runOneReplica)},
		},
		{
			name:    "ReadWriteMany is shared safely",
			obj:     deploy("web", ptr[int32](3), recreate, claimVolume("uploads")),
			objects: []any{pvc("uploads", rwx)},
		},
		{
			name:    "ReadWriteOnce with ReadWriteMany is shared safely",
			obj:     deploy("web", ptr[int32](3), recreate, claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo, rwx)},
		},
		{
			name:    "ReadOnlyMany mounted read-only everywhere",
			obj:     deploy("web", ptr[int32](3), recreate, claimVolume("uploads"), readOnlyMounts),
			objects: []any{pvc("uploads", rwo, rox)},
		},
		{
			name:    "ReadOnlyMany with one read-write mount is single-writer",
			obj:     deploy("web", ptr[int32](3), recreate, claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo, rox)},
			want:    []engine.Result{sharedOnDeployment("uploads", "ReadWriteOnce", "spec.replicas is 3", multiAttach, runOneReplica)},
		},
		{
			name: "a claim volume marked readOnly with ReadOnlyMany",
			obj: deploy("web", ptr[int32](3), recreate, claimVolume("uploads"), func(d *appsv1.Deployment) {
				d.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ReadOnly = true
			}),
			objects: []any{pvc("uploads", rwo, rox)},
		},
		{
			name:    "a bound claim is judged by the modes the volume has",
			obj:     deploy("web", ptr[int32](3), recreate, claimVolume("uploads")),
			objects: []any{bound(pvc("uploads", rwx), rwo)},
			want:    []engine.Result{sharedOnDeployment("uploads", "ReadWriteOnce", "spec.replicas is 3", multiAttach, runOneReplica)},
		},
		{
			name:    "a bound claim whose volume is ReadWriteMany",
			obj:     deploy("web", ptr[int32](3), recreate, claimVolume("uploads")),
			objects: []any{bound(pvc("uploads", rwo), rwo, rwx)},
		},
		{
			name:    "a pending claim is judged by its spec",
			obj:     deploy("web", ptr[int32](3), recreate, claimVolume("uploads")),
			objects: []any{pending(pvc("uploads", rwo), rwx)},
			want:    []engine.Result{sharedOnDeployment("uploads", "ReadWriteOnce", "spec.replicas is 3", multiAttach, runOneReplica)},
		},
		{
			name: "a missing claim is a warning",
			obj:  deploy("web", ptr[int32](3), recreate, claimVolume("uploads")),
			want: []engine.Result{missingClaim(3)},
		},
		{
			name:    "replicas unset means one",
			obj:     deploy("web", nil, recreate, claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo)},
		},
		{
			name:    "scaled to zero",
			obj:     deploy("web", ptr[int32](0), claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo)},
		},
		{
			name:    "an HPA raises the replica bound",
			obj:     deploy("web", ptr[int32](1), recreate, claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo), hpa("web", "web", 5), hpa("small", "web", 2)},
			want:    []engine.Result{sharedOnDeployment("uploads", "ReadWriteOnce", `HorizontalPodAutoscaler "web" may scale to 5 replicas`, multiAttach, `set maxReplicas of HorizontalPodAutoscaler "web" to 1`)},
		},
		{
			name:    "an HPA of another Deployment does not",
			obj:     deploy("web", ptr[int32](1), recreate, claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo), hpa("api", "api", 5)},
		},
		{
			name:    "UPDATE: a violation the stored Deployment had is a warning",
			obj:     deploy("web", ptr[int32](3), recreate, claimVolume("uploads"), func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:2" }),
			old:     deploy("web", ptr[int32](3), recreate, claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo)},
			want: []engine.Result{shared("Deployment", "web", "spec.template.spec.volumes[0].persistentVolumeClaim.claimName",
				"uploads", "ReadWriteOnce", "spec.replicas is 3", multiAttach, runOneReplica, engine.ActionWarn)},
		},
		{
			name:    "UPDATE: 3 to 5 replicas over a shared claim is worse: denied",
			obj:     deploy("web", ptr[int32](5), recreate, claimVolume("uploads")),
			old:     deploy("web", ptr[int32](3), recreate, claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo)},
			want:    []engine.Result{sharedOnDeployment("uploads", "ReadWriteOnce", "spec.replicas is 5", multiAttach, runOneReplica)},
		},
		{
			name:    "UPDATE: 5 to 3 is better: a warning",
			obj:     deploy("web", ptr[int32](3), recreate, claimVolume("uploads")),
			old:     deploy("web", ptr[int32](5), recreate, claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo)},
			want: []engine.Result{shared("Deployment", "web", "spec.template.spec.volumes[0].persistentVolumeClaim.claimName",
				"uploads", "ReadWriteOnce", "spec.replicas is 3", multiAttach, runOneReplica, engine.ActionWarn)},
		},
		{
			name:    "UPDATE: scaling up is a new violation",
			obj:     deploy("web", ptr[int32](3), recreate, claimVolume("uploads")),
			old:     deploy("web", ptr[int32](1), recreate, claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo)},
			want:    []engine.Result{sharedOnDeployment("uploads", "ReadWriteOnce", "spec.replicas is 3", multiAttach, runOneReplica)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := judgeDeployment(t, newEngine(t, ""), context.Background(), tt.obj, tt.old, index(tt.objects...))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(engine.Verdict{Results: tt.want}, got, ignoreIntended); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRollingUpdate(t *testing.T) {
	tests := []struct {
		name    string
		obj     *appsv1.Deployment
		objects []any
		want    []engine.Result
	}{
		{
			name:    "the default strategy over ReadWriteOnce",
			obj:     deploy("web", ptr[int32](1), claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo)},
			want:    []engine.Result{rolling("25%", "ReadWriteOnce", `"uploads"`)},
		},
		{
			name:    "maxSurge 1 over ReadWriteOncePod and ReadWriteOnce claims",
			obj:     deploy("web", nil, maxSurge(intstr.FromInt32(1)), claimVolume("uploads"), claimVolume("cache")),
			objects: []any{pvc("uploads", rwo), pvc("cache", rwop)},
			want:    []engine.Result{rolling("1", "ReadWriteOncePod", `"uploads", "cache"`)},
		},
		{
			name:    "maxSurge 50%",
			obj:     deploy("web", ptr[int32](1), maxSurge(intstr.FromString("50%")), claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo)},
			want:    []engine.Result{rolling("50%", "ReadWriteOnce", `"uploads"`)},
		},
		{
			name:    "maxSurge 0",
			obj:     deploy("web", ptr[int32](1), maxSurge(intstr.FromInt32(0)), claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo)},
		},
		{
			name:    "maxSurge 0%",
			obj:     deploy("web", ptr[int32](1), maxSurge(intstr.FromString("0%")), claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo)},
		},
		{
			name:    "Recreate",
			obj:     deploy("web", ptr[int32](1), recreate, claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo)},
		},
		{
			name:    "ReadWriteMany rolls fine",
			obj:     deploy("web", ptr[int32](1), claimVolume("uploads")),
			objects: []any{pvc("uploads", rwx)},
		},
		{
			name: "a missing claim is not judged at one replica",
			obj:  deploy("web", ptr[int32](1), claimVolume("uploads")),
		},
		{
			name:    "above one replica the shared rule applies instead",
			obj:     deploy("web", ptr[int32](2), claimVolume("uploads")),
			objects: []any{pvc("uploads", rwo)},
			want:    []engine.Result{sharedOnDeployment("uploads", "ReadWriteOnce", "spec.replicas is 2", multiAttach, runOneReplica)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := judgeDeployment(t, newEngine(t, ""), context.Background(), tt.obj, nil, index(tt.objects...))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(engine.Verdict{Results: tt.want}, got, ignoreIntended); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestHorizontalPodAutoscaler(t *testing.T) {
	onHPA := func(name, bound, fix string, action engine.Action) engine.Result {
		return shared("HorizontalPodAutoscaler", name, "spec.maxReplicas", "uploads", "ReadWriteOnce", bound, multiAttach, fix, action)
	}
	web := deploy("web", ptr[int32](1), recreate, claimVolume("uploads"))
	tests := []struct {
		name    string
		obj     *autoscalingv2.HorizontalPodAutoscaler
		old     *autoscalingv2.HorizontalPodAutoscaler
		objects []any
		want    []engine.Result
	}{
		{
			name:    "maxReplicas 5 over ReadWriteOnce",
			obj:     hpa("web", "web", 5),
			objects: []any{web, pvc("uploads", rwo)},
			want:    []engine.Result{onHPA("web", `HorizontalPodAutoscaler "web" may scale to 5 replicas`, `set maxReplicas of HorizontalPodAutoscaler "web" to 1`, engine.ActionDeny)},
		},
		{
			name:    "maxReplicas 1",
			obj:     hpa("web", "web", 1),
			objects: []any{web, pvc("uploads", rwo)},
		},
		{
			name:    "the written HPA replaces the stored one of the same name",
			obj:     hpa("web", "web", 1),
			objects: []any{web, pvc("uploads", rwo), hpa("web", "web", 5)},
		},
		{
			name:    "another HPA already raises the bound",
			obj:     hpa("web", "web", 1),
			objects: []any{web, pvc("uploads", rwo), hpa("other", "web", 4)},
			want:    []engine.Result{onHPA("web", `HorizontalPodAutoscaler "other" may scale to 4 replicas`, `set maxReplicas of HorizontalPodAutoscaler "other" to 1`, engine.ActionDeny)},
		},
		{
			name: "an HPA of a StatefulSet is not judged",
			obj: func() *autoscalingv2.HorizontalPodAutoscaler {
				h := hpa("web", "web", 5)
				h.Spec.ScaleTargetRef.Kind = "StatefulSet"
				return h
			}(),
			objects: []any{web, pvc("uploads", rwo)},
		},
		{
			name: "an HPA of another group's Deployment is not judged",
			obj: func() *autoscalingv2.HorizontalPodAutoscaler {
				h := hpa("web", "web", 5)
				h.Spec.ScaleTargetRef.APIVersion = "example.com/v1"
				return h
			}(),
			objects: []any{web, pvc("uploads", rwo)},
		},
		{
			name:    "an HPA whose Deployment does not exist yet",
			obj:     hpa("web", "web", 5),
			objects: []any{pvc("uploads", rwo)},
		},
		{
			name:    "UPDATE: an HPA raised from 5 to 6 makes it worse: denied",
			obj:     hpa("web", "web", 6),
			old:     hpa("web", "web", 5),
			objects: []any{web, pvc("uploads", rwo)},
			want:    []engine.Result{onHPA("web", `HorizontalPodAutoscaler "web" may scale to 6 replicas`, `set maxReplicas of HorizontalPodAutoscaler "web" to 1`, engine.ActionDeny)},
		},
		{
			name:    "UPDATE: an HPA lowered from 6 to 5 keeps a warning",
			obj:     hpa("web", "web", 5),
			old:     hpa("web", "web", 6),
			objects: []any{web, pvc("uploads", rwo)},
			want:    []engine.Result{onHPA("web", `HorizontalPodAutoscaler "web" may scale to 5 replicas`, `set maxReplicas of HorizontalPodAutoscaler "web" to 1`, engine.ActionWarn)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newEngine(t, "").HorizontalPodAutoscaler(context.Background(), tt.obj, tt.old, index(tt.objects...))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(engine.Verdict{Results: tt.want}, got, ignoreIntended); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestScale(t *testing.T) {
	scale := func(replicas int32) *autoscalingv1.Scale {
		return &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: autoscalingv1.ScaleSpec{Replicas: replicas}}
	}
	onScale := func(bound string, action engine.Action) engine.Result {
		return shared("Deployment", "web", "spec.replicas", "uploads", "ReadWriteOnce", bound, multiAttach, runOneReplica, action)
	}
	tests := []struct {
		name  string
		scale *autoscalingv1.Scale
		dep   *appsv1.Deployment
		want  []engine.Result
	}{
		{
			name:  "kubectl scale --replicas=3 over ReadWriteOnce",
			scale: scale(3),
			dep:   deploy("web", ptr[int32](1), recreate, claimVolume("uploads")),
			want:  []engine.Result{onScale("the scale request sets 3 replicas", engine.ActionDeny)},
		},
		{
			name:  "back to 1",
			scale: scale(1),
			dep:   deploy("web", ptr[int32](3), recreate, claimVolume("uploads")),
		},
		{
			name:  "3 to 3 on a Deployment that already violates",
			scale: scale(3),
			dep:   deploy("web", ptr[int32](3), recreate, claimVolume("uploads")),
			want:  []engine.Result{onScale("the scale request sets 3 replicas", engine.ActionWarn)},
		},
		{
			name:  "2 to 3 on a Deployment that already violates: worse, so denied",
			scale: scale(3),
			dep:   deploy("web", ptr[int32](2), recreate, claimVolume("uploads")),
			want:  []engine.Result{onScale("the scale request sets 3 replicas", engine.ActionDeny)},
		},
		{
			name:  "3 to 2: better, so a warning",
			scale: scale(2),
			dep:   deploy("web", ptr[int32](3), recreate, claimVolume("uploads")),
			want:  []engine.Result{onScale("the scale request sets 2 replicas", engine.ActionWarn)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newEngine(t, "").Scale(context.Background(), tt.scale, tt.dep, index(pvc("uploads", rwo)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(engine.Verdict{Results: tt.want}, got, ignoreIntended); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
