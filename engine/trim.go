package engine

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Trimming keeps of a workload what the rules read and drops the rest:
// managed fields, status, and of the Pod template everything but its
// labels and annotations, its volumes, and each container's name, image,
// command, arguments, environment, mounts and restart policy. A trimmed
// workload gets the verdict of the whole one (the engine's tests judge
// both), so the server caches, and the webhook decodes, trimmed
// workloads only: a probe, a resource quantity or a managed-fields entry
// costs memory and decoding time and decides nothing.

// TrimStatefulSet trims sts in place and returns it.
func TrimStatefulSet(sts *appsv1.StatefulSet) *appsv1.StatefulSet {
	sts.ManagedFields = nil
	sts.Status = appsv1.StatefulSetStatus{}
	TrimPodTemplate(&sts.Spec.Template)
	return sts
}

// TrimDeployment trims dep in place and returns it.
func TrimDeployment(dep *appsv1.Deployment) *appsv1.Deployment {
	dep.ManagedFields = nil
	dep.Status = appsv1.DeploymentStatus{}
	TrimPodTemplate(&dep.Spec.Template)
	return dep
}

// TrimPodTemplate trims a Pod template in place.
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
