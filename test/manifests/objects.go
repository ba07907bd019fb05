package manifests

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// The objects below are shaped as charts make them (labels, probes,
// resources, security contexts), for the benchmarks that seed a cluster
// or fill the server's store.

// ChartLabels are the labels a Helm chart gives its objects.
func ChartLabels(name string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name, "app.kubernetes.io/component": "primary",
		"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/version": "17.2.0", "helm.sh/chart": "postgresql-16.4.2",
	}
}

// ChartContainer is a container as charts write them: probes, resources,
// a security context, ports and environment.
func ChartContainer(name, image, port string, mounts ...corev1.VolumeMount) corev1.Container {
	probe := &corev1.Probe{
		ProbeHandler:        corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/sh", "-c", "exec pg_isready -U postgres -h 127.0.0.1 -p " + port}}},
		InitialDelaySeconds: 30, PeriodSeconds: 10, TimeoutSeconds: 5, SuccessThreshold: 1, FailureThreshold: 6,
	}
	return corev1.Container{
		Name: name, Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
		Ports: []corev1.ContainerPort{{Name: "tcp", ContainerPort: 5432, Protocol: corev1.ProtocolTCP}},
		Env: []corev1.EnvVar{
			{Name: "BITNAMI_DEBUG", Value: "false"}, {Name: "PORT_NUMBER", Value: port},
			{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: "password"}}},
		},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
		},
		LivenessProbe: probe, ReadinessProbe: probe,
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true), RunAsNonRoot: ptr.To(true),
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		VolumeMounts: mounts,
	}
}

// Service is a chart's headless Service.
func Service(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: ChartLabels(name)},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone, PublishNotReadyAddresses: true, Selector: Selector(name),
			Ports: []corev1.ServicePort{{Name: "tcp-postgresql", Port: 5432, TargetPort: intstr.FromString("tcp")}},
		},
	}
}

// Selector selects a workload's Pods.
func Selector(name string) map[string]string {
	return map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/instance": name}
}

// StatefulSet is a compliant database: its data directory on a claim
// template, its serviceName its headless Service's.
func StatefulSet(name string) *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: ChartLabels(name)},
		Spec: appsv1.StatefulSetSpec{
			ServiceName: name,
			Replicas:    ptr.To[int32](3),
			Selector:    &metav1.LabelSelector{MatchLabels: Selector(name)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: ChartLabels(name)},
				Spec: corev1.PodSpec{
					SecurityContext: &corev1.PodSecurityContext{FSGroup: ptr.To[int64](1001), RunAsUser: ptr.To[int64](1001)},
					Containers: []corev1.Container{ChartContainer("postgresql", "postgres:17", "5432",
						corev1.VolumeMount{Name: "data", MountPath: "/var/lib/postgresql/data"})},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}},
				},
			}},
		},
	}
}

// Claim is a chart's ReadWriteOnce claim.
func Claim(name string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: ChartLabels(name)},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To("standard"),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
}

// Deployment runs one replica over its claim, replaced with Recreate: compliant.
func Deployment(name string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: ChartLabels(name)},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Selector: &metav1.LabelSelector{MatchLabels: Selector(name)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: ChartLabels(name)},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{ChartContainer("web", "nginx:1.27", "8080", corev1.VolumeMount{Name: "uploads", MountPath: "/uploads"})},
					Volumes:    []corev1.Volume{{Name: "uploads", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name}}}},
				},
			},
		},
	}
}
