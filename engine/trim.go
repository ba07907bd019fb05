package engine

import (
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Trimming keeps of an object what the rules read and drops the rest. Of
// a workload: its metadata but managed fields; of its spec the replicas,
// a StatefulSet's Service name and its claim templates' names, a
// Deployment's strategy, and the Pod template's labels and annotations,
// its volumes, and each container's name, image, command, arguments,
// environment, mounts and restart policy. Of what the lookups return: names, labels, and the
// fields the rules read (a Service's type, cluster IP and selector; a
// claim's access modes and phase; an HPA's target and replica bounds; a
// Namespace's annotations). A trimmed workload gets the verdict of the
// whole one (the engine's tests judge both, with trimmed lookups), so
// the server caches, and the webhook decodes, trimmed objects only: a
// probe, a resource quantity or a managed-fields entry costs memory and
// decoding time and decides nothing.

// Trim trims obj in place when it is of a kind the rules read, and
// returns it.
func Trim(obj any) any {
	switch o := obj.(type) {
	case *appsv1.StatefulSet:
		TrimStatefulSet(o)
	case *appsv1.Deployment:
		TrimDeployment(o)
	case *corev1.Service:
		o.ObjectMeta = nameOnly(o.ObjectMeta)
		o.Spec = corev1.ServiceSpec{Type: o.Spec.Type, ClusterIP: o.Spec.ClusterIP, Selector: o.Spec.Selector}
		o.Status = corev1.ServiceStatus{}
	case *corev1.PersistentVolumeClaim:
		o.ObjectMeta = nameOnly(o.ObjectMeta)
		o.Spec = corev1.PersistentVolumeClaimSpec{AccessModes: o.Spec.AccessModes}
		o.Status = corev1.PersistentVolumeClaimStatus{Phase: o.Status.Phase, AccessModes: o.Status.AccessModes}
	case *autoscalingv2.HorizontalPodAutoscaler:
		o.ObjectMeta = nameOnly(o.ObjectMeta)
		o.Spec = autoscalingv2.HorizontalPodAutoscalerSpec{ScaleTargetRef: o.Spec.ScaleTargetRef, MinReplicas: o.Spec.MinReplicas, MaxReplicas: o.Spec.MaxReplicas}
		o.Status = autoscalingv2.HorizontalPodAutoscalerStatus{}
	case *corev1.Namespace:
		labels, annotations := o.Labels, o.Annotations
		o.ObjectMeta = nameOnly(o.ObjectMeta)
		o.Labels, o.Annotations = labels, annotations
		o.Spec, o.Status = corev1.NamespaceSpec{}, corev1.NamespaceStatus{}
	}
	return obj
}

// nameOnly is what a looked-up object keeps of its metadata: lookups go
// by name, and labels are most of a small object's memory.
func nameOnly(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion}
}

// TrimStatefulSet trims sts in place and returns it.
func TrimStatefulSet(sts *appsv1.StatefulSet) *appsv1.StatefulSet {
	sts.ManagedFields = nil
	sts.Status = appsv1.StatefulSetStatus{}
	TrimPodTemplate(&sts.Spec.Template)
	sts.Spec.Template.Labels = sameLabels(sts.Labels, sts.Spec.Template.Labels)
	for i, c := range sts.Spec.VolumeClaimTemplates {
		sts.Spec.VolumeClaimTemplates[i] = corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: c.Name}}
	}
	sts.Spec = appsv1.StatefulSetSpec{Replicas: sts.Spec.Replicas, ServiceName: sts.Spec.ServiceName, Template: sts.Spec.Template, VolumeClaimTemplates: sts.Spec.VolumeClaimTemplates}
	return sts
}

// TrimDeployment trims dep in place and returns it.
func TrimDeployment(dep *appsv1.Deployment) *appsv1.Deployment {
	dep.ManagedFields = nil
	dep.Status = appsv1.DeploymentStatus{}
	TrimPodTemplate(&dep.Spec.Template)
	dep.Spec.Template.Labels = sameLabels(dep.Labels, dep.Spec.Template.Labels)
	dep.Spec = appsv1.DeploymentSpec{Replicas: dep.Spec.Replicas, Strategy: dep.Spec.Strategy, Template: dep.Spec.Template}
	return dep
}

// sameLabels is template, or workload when it holds the same labels: a
// cached object is never written, and a copy of it copies both maps.
func sameLabels(workload, template map[string]string) map[string]string {
	if len(workload) > 0 && maps.Equal(workload, template) {
		return workload
	}
	return template
}

// TrimPodTemplate trims a Pod template in place. Its labels are most
// often the workload's: those of a trimmed workload share one map.
func TrimPodTemplate(t *corev1.PodTemplateSpec) {
	t.ObjectMeta = metav1.ObjectMeta{Labels: t.Labels, Annotations: t.Annotations}
	t.Spec = corev1.PodSpec{
		Volumes:        t.Spec.Volumes,
		InitContainers: TrimContainers(t.Spec.InitContainers),
		Containers:     TrimContainers(t.Spec.Containers),
	}
}

// TrimContainers trims containers in place and returns them.
func TrimContainers(containers []corev1.Container) []corev1.Container {
	for i, c := range containers {
		containers[i] = corev1.Container{
			Name: c.Name, Image: c.Image, Command: c.Command, Args: c.Args,
			Env: c.Env, VolumeMounts: c.VolumeMounts, RestartPolicy: c.RestartPolicy,
		}
	}
	return containers
}
