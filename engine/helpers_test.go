package engine_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/stateguard/stateguard/config"
	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/lookup"
)

// Builders keep each table row to the one thing it is about. Every object
// is in namespace "shop".

func ptr[T any](v T) *T { return &v }

func newEngine(t *testing.T, yaml string) *engine.Engine {
	t.Helper()
	cfg, err := config.Parse([]byte("apiVersion: stateguard.io/v1alpha1\nkind: Config\n" + yaml))
	if err != nil {
		t.Fatal(err)
	}
	return engine.New(cfg.Settings())
}

// fieldPath is a path that renders as s: results are compared by their
// rendered field paths.
func fieldPath(s string) *field.Path { return field.NewPath(s) }

var renderedPaths = cmp.Transformer("String", func(p *field.Path) string { return p.String() })

// ignoreIntended leaves the action before enforcement caps to TestResolve:
// the rule tables run without caps.
var ignoreIntended = cmp.Options{cmpopts.IgnoreFields(engine.Result{}, "Intended"), renderedPaths}

// index is the lookup the server and the audits use, of copies of objs:
// the rules must read nothing the store drops.
func index(objs ...any) *lookup.Store {
	x := lookup.NewStore()
	for _, o := range objs {
		stored, ok := o.(lookup.Stored)
		if !ok {
			continue // nil: a case without the object
		}
		if err := x.Put(stored.DeepCopyObject().(lookup.Stored)); err != nil {
			panic(err)
		}
	}
	return x
}

// sts is a StatefulSet whose serviceName is its name and whose Pods carry app=<name>.
func sts(name string, opts ...func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	s := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec: appsv1.StatefulSetSpec{
			ServiceName: name,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}},
			},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func headlessSvc(name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, ClusterIP: corev1.ClusterIPNone, Selector: selector},
	}
}

func pvc(name string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec:       corev1.PersistentVolumeClaimSpec{AccessModes: modes},
	}
}

func deploy(name string, replicas *int32, opts ...func(*appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec: appsv1.DeploymentSpec{
			Replicas: replicas,
			Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}},
			},
		},
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

func hpa(name, target string, maxReplicas int32) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: target},
			MaxReplicas:    maxReplicas,
		},
	}
}

// StatefulSet options.

func volume(v corev1.Volume) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Volumes = append(s.Spec.Template.Spec.Volumes, v) }
}

func emptyDir(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
}

// image sets the first container's image.
func image(ref string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Image = ref }
}

// env sets a variable of the first container.
func env(name, value string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) {
		c := &s.Spec.Template.Spec.Containers[0]
		c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: value})
	}
}

// args sets the first container's arguments.
func args(a ...string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].Args = a }
}

// subPathMount adds a mount of a volume's subPath to the first container.
func subPathMount(volume, path, subPath string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) {
		c := &s.Spec.Template.Spec.Containers[0]
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: volume, MountPath: path, SubPath: subPath})
	}
}

// mount adds a mount to the first container.
func mount(volume, path string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) {
		c := &s.Spec.Template.Spec.Containers[0]
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: volume, MountPath: path})
	}
}

func claimTemplate(name string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) {
		s.Spec.VolumeClaimTemplates = append(s.Spec.VolumeClaimTemplates, corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}},
		})
	}
}

// Deployment options.

// claimVolume adds a claim volume named after the claim, mounted read-write at /mnt/<claim>.
func claimVolume(claim string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) {
		p := &d.Spec.Template.Spec
		p.Volumes = append(p.Volumes, corev1.Volume{Name: claim, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}})
		p.Containers[0].VolumeMounts = append(p.Containers[0].VolumeMounts, corev1.VolumeMount{Name: claim, MountPath: "/mnt/" + claim})
	}
}

func recreate(d *appsv1.Deployment) { d.Spec.Strategy.Type = appsv1.RecreateDeploymentStrategyType }

func maxSurge(v intstr.IntOrString) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) {
		d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
			RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &v}}
	}
}

// judgeStatefulSet is e.StatefulSet, which it also asks of the trimmed
// copies of obj and old: the test fails when trimming changes a verdict,
// that is, when a rule reads a field engine.TrimStatefulSet drops.
func judgeStatefulSet(t *testing.T, e *engine.Engine, ctx context.Context, obj, old *appsv1.StatefulSet, lk engine.Lookup) (engine.Verdict, error) {
	t.Helper()
	trimmed := func(s *appsv1.StatefulSet) *appsv1.StatefulSet {
		if s == nil {
			return nil
		}
		return engine.TrimStatefulSet(s.DeepCopy())
	}
	return sameVerdict(t, "StatefulSet", func(obj, old *appsv1.StatefulSet) (engine.Verdict, error) { return e.StatefulSet(ctx, obj, old, lk) }, obj, old, trimmed)
}

// judgeDeployment is e.Deployment, checked as judgeStatefulSet checks.
func judgeDeployment(t *testing.T, e *engine.Engine, ctx context.Context, obj, old *appsv1.Deployment, lk engine.Lookup) (engine.Verdict, error) {
	t.Helper()
	trimmed := func(d *appsv1.Deployment) *appsv1.Deployment {
		if d == nil {
			return nil
		}
		return engine.TrimDeployment(d.DeepCopy())
	}
	return sameVerdict(t, "Deployment", func(obj, old *appsv1.Deployment) (engine.Verdict, error) { return e.Deployment(ctx, obj, old, lk) }, obj, old, trimmed)
}

func sameVerdict[T any](t *testing.T, kind string, judge func(obj, old T) (engine.Verdict, error), obj, old T, trim func(T) T) (engine.Verdict, error) {
	t.Helper()
	v, err := judge(obj, old)
	trimmedVerdict, trimmedErr := judge(trim(obj), trim(old))
	if diff := cmp.Diff(v, trimmedVerdict, renderedPaths); diff != "" || (err == nil) != (trimmedErr == nil) {
		t.Errorf("the trimmed %s gets another verdict (-whole +trimmed):\n%s\nerrors: %v, %v", kind, diff, err, trimmedErr)
	}
	return v, err
}
