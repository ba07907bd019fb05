package engine_test

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateguard/stateguard/config"
	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/lookup"
)

// postgres is a realistic compliant StatefulSet: a headless Service, data on
// a volumeClaimTemplate, scratch on emptyDir, a metrics sidecar.
func postgres() (*appsv1.StatefulSet, *lookup.Store) {
	labels := map[string]string{"app.kubernetes.io/name": "postgres", "app.kubernetes.io/instance": "shop"}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "postgres-hl", Namespace: "shop", Labels: labels},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, ClusterIP: corev1.ClusterIPNone, Selector: labels,
			Ports: []corev1.ServicePort{{Name: "postgres", Port: 5432}},
		},
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "postgres", Namespace: "shop", Labels: labels,
			Annotations: map[string]string{"meta.helm.sh/release-name": "shop"}},
		Spec: appsv1.StatefulSetSpec{
			ServiceName: "postgres-hl",
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{
						{
							Name: "postgres", Image: "postgres:17",
							Env: []corev1.EnvVar{{Name: "PGDATA", Value: "/var/lib/postgresql/data/pgdata"}, {Name: "POSTGRES_DB", Value: "shop"}},
							VolumeMounts: []corev1.VolumeMount{
								{Name: "data", MountPath: "/var/lib/postgresql/data"},
								{Name: "tmp", MountPath: "/tmp"},
								{Name: "dshm", MountPath: "/dev/shm"},
							},
						},
						{
							Name: "metrics", Image: "postgres-exporter:0.17",
							VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
						},
					},
					Volumes: []corev1.Volume{
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
						{Name: "dshm", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
					},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("20Gi")}},
				},
			}},
		},
	}
	idx := lookup.NewStore()
	for _, o := range []lookup.Stored{svc, ns} {
		if err := idx.Put(o); err != nil {
			panic(err)
		}
	}
	return sts, idx
}

// BenchmarkStatefulSetCompliant is the engine's hot path: a compliant
// StatefulSet judged with its lookups. Target: <= 2 µs and <= 10 allocs.
func BenchmarkStatefulSetCompliant(b *testing.B) {
	sts, idx := postgres()
	eng := engine.New(config.Default().Settings())
	ctx := context.Background()
	if v, err := eng.StatefulSet(ctx, sts, nil, idx); err != nil || len(v.Results) > 0 {
		b.Fatalf("not compliant: %v %+v", err, v)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := eng.StatefulSet(ctx, sts, nil, idx); err != nil {
			b.Fatal(err)
		}
	}
}
