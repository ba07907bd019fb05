package engine_test

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/stateguard/stateguard/engine"
)

// brief renders results as "rule action field".
func briefResults(rs []engine.Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Rule+" "+string(r.Action)+" "+r.Field.String())
	}
	return out
}

func TestStatefulSetSharedClaims(t *testing.T) {
	existingClaim := func(replicas int32) *appsv1.StatefulSet {
		return sts("db", func(s *appsv1.StatefulSet) {
			s.Spec.Replicas = ptr(replicas)
			s.Spec.Template.Spec.Volumes = append(s.Spec.Template.Spec.Volumes, corev1.Volume{Name: "data",
				VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "pg-replica-data"}}})
		}, mount("data", "/bitnami/postgresql"))
	}
	scaler := hpa("db", "db", 4)
	scaler.Spec.ScaleTargetRef.Kind = "StatefulSet"
	for _, tt := range []struct {
		name string
		obj  *appsv1.StatefulSet
		old  *appsv1.StatefulSet
		pvc  *corev1.PersistentVolumeClaim
		want []string
	}{
		{"three replicas over one ReadWriteOnce claim", existingClaim(3), nil, pvc("pg-replica-data", rwo),
			[]string{"statefulset-shared-rwo-pvc deny spec.template.spec.volumes[0].persistentVolumeClaim.claimName"}},
		{"one replica", existingClaim(1), nil, pvc("pg-replica-data", rwo), nil},
		{"a claim not found: a warning", existingClaim(3), nil, pvc("other", rwo),
			[]string{"statefulset-shared-rwo-pvc warn spec.template.spec.volumes[0].persistentVolumeClaim.claimName"}},
		{"a ReadWriteMany claim", existingClaim(3), nil, pvc("pg-replica-data", rwx), nil},
		{"UPDATE from 3 to 5 is worse", existingClaim(5), existingClaim(3), pvc("pg-replica-data", rwo),
			[]string{"statefulset-shared-rwo-pvc deny spec.template.spec.volumes[0].persistentVolumeClaim.claimName"}},
		{"UPDATE from 5 to 3 is not", existingClaim(3), existingClaim(5), pvc("pg-replica-data", rwo),
			[]string{"statefulset-shared-rwo-pvc warn spec.template.spec.volumes[0].persistentVolumeClaim.claimName"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := judgeStatefulSet(t, newEngine(t, ""), context.Background(), tt.obj, tt.old, index(headlessSvc("db", map[string]string{"app": "db"}), tt.pvc))
			if err != nil {
				t.Fatal(err)
			}
			if g := briefResults(got.Results); strings.Join(g, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("results %q, want %q", g, tt.want)
			}
			if len(got.Results) > 0 && got.Results[0].Action == engine.ActionDeny && !strings.Contains(got.Results[0].Message, ` and every replica of StatefulSet "db" mounts it`) {
				t.Errorf("message %q", got.Results[0].Message)
			}
		})
	}
}

// TestStatefulSetSharedClaimsUnderAnHPA: the replica bound counts the
// maxReplicas of the HPAs of the StatefulSet, as for Deployments.
func TestStatefulSetSharedClaimsUnderAnHPA(t *testing.T) {
	scaler := hpa("db", "db", 4)
	scaler.Spec.ScaleTargetRef.Kind = "StatefulSet"
	one := sts("db", func(s *appsv1.StatefulSet) {
		s.Spec.Template.Spec.Volumes = append(s.Spec.Template.Spec.Volumes, corev1.Volume{Name: "data",
			VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "shared"}}})
	}, mount("data", "/data"))
	got, err := judgeStatefulSet(t, newEngine(t, ""), context.Background(), one, nil, index(headlessSvc("db", map[string]string{"app": "db"}), pvc("shared", rwo), scaler))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Results) != 1 || got.Results[0].Action != engine.ActionDeny ||
		!strings.Contains(got.Results[0].Message, `HorizontalPodAutoscaler "db" may scale to 4 replicas`) ||
		!strings.Contains(got.Results[0].Message, `set maxReplicas of HorizontalPodAutoscaler "db" to 1`) {
		t.Errorf("results %+v: want a denial naming the HPA", got.Results)
	}
}

// TestDeploymentEmptyDirData: what a Deployment keeps on emptyDir is lost
// at every rollout: a warning, by the same judgement as StatefulSets.
func TestDeploymentEmptyDirData(t *testing.T) {
	withVolume := func(img, volume, path string) *appsv1.Deployment {
		return deploy("grafana", ptr[int32](1), func(d *appsv1.Deployment) {
			p := &d.Spec.Template.Spec
			p.Containers[0].Image = img
			p.Volumes = append(p.Volumes, corev1.Volume{Name: volume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			p.Containers[0].VolumeMounts = append(p.Containers[0].VolumeMounts, corev1.VolumeMount{Name: volume, MountPath: path})
		})
	}
	for _, tt := range []struct {
		name string
		obj  *appsv1.Deployment
		want []string
	}{
		{"a dashboard's SQLite", withVolume("docker.io/grafana/grafana:13.2.0", "storage", "/var/lib/grafana"),
			[]string{"deployment-emptydir-data warn spec.template.spec.volumes[0]"}},
		{"a metrics server's TSDB", withVolume("quay.io/prometheus/prometheus:v3.5.0", "storage-volume", "/data"),
			[]string{"deployment-emptydir-data warn spec.template.spec.volumes[0]"}},
		{"a rebuildable search index beside it", withVolume("busybox", "search", "/var/lib/grafana-search"),
			[]string{"deployment-emptydir-data warn spec.template.spec.volumes[0]"}},
		{"scratch", withVolume("quay.io/argoproj/argocd:v3.4.4", "tmp", "/tmp"), nil},
		{"a home directory", withVolume("quay.io/argoproj/argocd:v3.4.4", "plugins-home", "/home/argocd"), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := judgeDeployment(t, newEngine(t, ""), context.Background(), tt.obj, nil, index())
			if err != nil {
				t.Fatal(err)
			}
			if g := briefResults(got.Results); strings.Join(g, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("results %q, want %q", g, tt.want)
			}
		})
	}
}

// TestDataDirectoryUnmounted: a known image with no volume at its data
// directory keeps its data in the container's writable layer.
func TestDataDirectoryUnmounted(t *testing.T) {
	for _, tt := range []struct {
		name string
		obj  *appsv1.StatefulSet
		want []string
	}{
		{"a search engine with persistence off", sts("db", image("docker.elastic.co/elasticsearch/elasticsearch:9.1.2")),
			[]string{"data-directory-unmounted warn spec.template.spec.containers[0]"}},
		{"a claim at the data directory", sts("db", image("postgres:17"), claimTemplate("data"), mount("data", "/var/lib/postgresql/data")), nil},
		{"a claim above it", sts("db", image("bitnami/redis:8.2"), claimTemplate("data"), mount("data", "/bitnami")), nil},
		{"the data directory moved by the image's variable, and mounted there",
			sts("db", image("postgres:17"), env("PGDATA", "/pgdata/17"), claimTemplate("data"), mount("data", "/pgdata")), nil},
		{"the data directory moved, and nothing there",
			sts("db", image("postgres:17"), env("PGDATA", "/pgdata/17"), claimTemplate("data"), mount("data", "/var/lib/postgresql")),
			[]string{"data-directory-unmounted warn spec.template.spec.containers[0]"}},
		{"a cache: Redis with snapshots off", sts("db", image("redis:8"), args("--save", "", "--appendonly", "no")), nil},
		{"coordinating-only search nodes", sts("db", image("bitnami/opensearch:3.2.0"), env("OPENSEARCH_NODE_ROLES", "")), nil},
		{"storage configured elsewhere: Vault", sts("db", image("hashicorp/vault:1.20")), nil},
		{"an image stateguard does not know", sts("db", image("example.com/team/app:1")), nil},
		{"a registry with a port, and a digest", sts("db", image("localhost:5000/library/postgres@sha256:0123abcd")),
			[]string{"data-directory-unmounted warn spec.template.spec.containers[0]"}},
		{"a mirror's longer path", sts("db", image("ecr-public.aws.com/docker/library/redis:8.2.3-alpine")),
			[]string{"data-directory-unmounted warn spec.template.spec.containers[0]"}},
		{"a neighbour's name is not the image", sts("db", image("docker.io/bitnami/redis-sentinel:8.2")), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := judgeStatefulSet(t, newEngine(t, ""), context.Background(), tt.obj, nil, index(headlessSvc("db", map[string]string{"app": "db"})))
			if err != nil {
				t.Fatal(err)
			}
			if g := briefResults(got.Results); strings.Join(g, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("results %q, want %q", g, tt.want)
			}
		})
	}
}

func TestTheCatalogueIsWellFormed(t *testing.T) {
	c := engine.BuiltinCatalogue()
	if c.Version == "" || len(c.DataDirectories) < 30 {
		t.Fatalf("catalogue version %q with %d entries: want a version and at least 30", c.Version, len(c.DataDirectories))
	}
	seen := map[string]bool{}
	for _, d := range c.DataDirectories {
		if seen[d.Name] || len(d.Images) == 0 || len(d.Paths) == 0 {
			t.Errorf("entry %+v: want a unique name, images and paths", d)
		}
		seen[d.Name] = true
		for _, p := range d.Paths {
			if !strings.HasPrefix(p, "/") || p == "/" {
				t.Errorf("%s: path %q is not an absolute directory", d.Name, p)
			}
		}
	}
}
