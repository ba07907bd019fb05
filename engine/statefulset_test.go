package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/stateguard/stateguard/engine"
)

const exemptHint = "; if the Pods need no stable DNS names, ask the platform team for an exemption from statefulset-headless-service in stateguard's policy"

func stsResult(rule, field, message string) engine.Result {
	return engine.Result{Rule: rule, Action: engine.ActionDeny, Kind: "StatefulSet", Namespace: "shop", Name: "db", Field: fieldPath(field), Message: message}
}

func TestHeadlessService(t *testing.T) {
	const rule = engine.RuleHeadlessService
	app := map[string]string{"app": "db"}
	notHeadless := func(detail string) engine.Result {
		return stsResult(rule, "spec.serviceName", `Service "db" in namespace "shop" is not headless (clusterIP `+detail+`): set clusterIP: None `+
			`(clusterIP cannot change on an existing Service: create a separate headless Service and point spec.serviceName at it)`+exemptHint)
	}
	ofType := func(typ string) engine.Result {
		return stsResult(rule, "spec.serviceName", `Service "db" in namespace "shop" is not headless (type `+typ+`): `+
			`point spec.serviceName at a Service with type: ClusterIP and clusterIP: None`+exemptHint)
	}
	selects := func(missing string) engine.Result {
		return stsResult(rule, "spec.template.metadata.labels", `Service "db" in namespace "shop" selects `+missing+`, which the Pod template lacks, `+
			`so the Pods get no DNS records: add the labels to spec.template.metadata.labels, or point spec.serviceName at a Service that selects the Pods`+exemptHint)
	}
	svc := func(edit func(*corev1.Service)) *corev1.Service {
		s := headlessSvc("db", app)
		edit(s)
		return s
	}
	tests := []struct {
		name     string
		obj      *appsv1.StatefulSet
		services []any
		want     []engine.Result
	}{
		{
			name:     "a headless Service that selects the Pods",
			obj:      sts("db"),
			services: []any{headlessSvc("db", app)},
		},
		{
			name: "a selector that is a subset of the template labels",
			obj: sts("db", func(s *appsv1.StatefulSet) {
				s.Spec.Template.Labels = map[string]string{"app": "db", "tier": "data", "version": "17"}
			}),
			services: []any{headlessSvc("db", map[string]string{"app": "db", "tier": "data"})},
		},
		{
			name:     "a headless Service of type unset (as in manifests) is fine",
			obj:      sts("db"),
			services: []any{svc(func(s *corev1.Service) { s.Spec.Type = "" })},
		},
		{
			name: "empty serviceName",
			obj:  sts("db", func(s *appsv1.StatefulSet) { s.Spec.ServiceName = "" }),
			want: []engine.Result{stsResult(rule, "spec.serviceName", "is empty, so the Pods get no stable DNS names: "+
				"set it to the name of a headless Service (clusterIP: None) whose selector matches spec.template.metadata.labels"+exemptHint)},
		},
		{
			name: "the Service is missing",
			obj:  sts("db"),
			want: []engine.Result{stsResult(rule, "spec.serviceName", missingDBService)},
		},
		{
			name:     "a Service of that name in another namespace does not count",
			obj:      sts("db"),
			services: []any{svc(func(s *corev1.Service) { s.Namespace = "other" })},
			want:     []engine.Result{stsResult(rule, "spec.serviceName", missingDBService)},
		},
		{
			name:     "a ClusterIP Service with a virtual IP (the Jenkins chart)",
			obj:      sts("db"),
			services: []any{svc(func(s *corev1.Service) { s.Spec.ClusterIP = "10.96.4.2" })},
			want:     []engine.Result{notHeadless("10.96.4.2")},
		},
		{
			name:     "a ClusterIP Service whose IP is yet to be allocated",
			obj:      sts("db"),
			services: []any{svc(func(s *corev1.Service) { s.Spec.ClusterIP = "" })},
			want:     []engine.Result{notHeadless("not set, so one is allocated")},
		},
		{
			name:     "a NodePort Service",
			obj:      sts("db"),
			services: []any{svc(func(s *corev1.Service) { s.Spec.Type, s.Spec.ClusterIP = corev1.ServiceTypeNodePort, "10.96.4.2" })},
			want:     []engine.Result{ofType("NodePort")},
		},
		{
			name: "an ExternalName Service",
			obj:  sts("db"),
			services: []any{svc(func(s *corev1.Service) {
				s.Spec.Type, s.Spec.ClusterIP, s.Spec.ExternalName = corev1.ServiceTypeExternalName, "", "db.example.com"
			})},
			want: []engine.Result{ofType("ExternalName")},
		},
		{
			name:     "a Service without a selector",
			obj:      sts("db"),
			services: []any{headlessSvc("db", nil)},
			want: []engine.Result{stsResult(rule, "spec.serviceName", `Service "db" in namespace "shop" has no selector, `+
				`so it publishes no DNS records for the Pods: set its selector to labels of spec.template.metadata.labels`+exemptHint)},
		},
		{
			name:     "a selector the template lacks, pairs listed sorted",
			obj:      sts("db"),
			services: []any{headlessSvc("db", map[string]string{"app": "database", "tier": "data"})},
			want:     []engine.Result{selects("app=database, tier=data")},
		},
		{
			name: "not headless and not selecting: both violations",
			obj:  sts("db"),
			services: []any{svc(func(s *corev1.Service) {
				s.Spec.ClusterIP, s.Spec.Selector = "10.96.4.2", map[string]string{"app": "web"}
			})},
			want: []engine.Result{notHeadless("10.96.4.2"), selects("app=web")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := judgeStatefulSet(t, newEngine(t, ""), context.Background(), tt.obj, nil, index(tt.services...))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(engine.Verdict{Results: tt.want}, got, ignoreIntended); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestEmptyDirData(t *testing.T) {
	const rule = engine.RuleEmptyDirData
	data := func(volumeIndex int, source, volume, mounts, reason string, action engine.Action) engine.Result {
		r := stsResult(rule, fmt.Sprintf("spec.template.spec.volumes[%d]", volumeIndex), fmt.Sprintf(`%s volume %q is mounted read-write by %s (%s), and its data is lost when the Pod is deleted: `+
			`move it to spec.volumeClaimTemplates (a claim template named %q replaces the volume); `+
			`if it only holds scratch data, name it in the annotation stateguard.io/scratch-volumes`, source, volume, mounts, reason, volume))
		r.Action = action
		return r
	}
	ephemeral := func(name string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{}}}
	}
	memory := func(name string) corev1.Volume {
		v := emptyDir(name)
		v.EmptyDir.Medium = corev1.StorageMediumMemory
		return v
	}
	readOnly := func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.Containers[0].VolumeMounts[0].ReadOnly = true }
	initContainer := func(always bool) func(*appsv1.StatefulSet) {
		return func(s *appsv1.StatefulSet) {
			c := corev1.Container{Name: "init", Image: "busybox", VolumeMounts: []corev1.VolumeMount{{Name: "state", MountPath: "/data"}}}
			if always {
				c.RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
			}
			s.Spec.Template.Spec.InitContainers = append(s.Spec.Template.Spec.InitContainers, c)
		}
	}
	const deny, warn = engine.ActionDeny, engine.ActionWarn
	tests := []struct {
		name   string
		config string
		obj    *appsv1.StatefulSet
		want   []engine.Result
	}{
		// One sign warns.
		{
			name: "emptyDir under a data path",
			obj:  sts("db", volume(emptyDir("state")), mount("state", "/var/lib/mysql")),
			want: []engine.Result{data(0, "emptyDir", "state", `container "main" at /var/lib/mysql`, "under data path /var/lib", warn)},
		},
		{
			name: "a generic ephemeral volume under a data path",
			obj:  sts("db", volume(ephemeral("state")), mount("state", "/data")),
			want: []engine.Result{data(0, "generic ephemeral", "state", `container "main" at /data`, "under data path /data", warn)},
		},
		{
			name: "the data path itself with a trailing slash",
			obj:  sts("db", volume(emptyDir("state")), mount("state", "/data/")),
			want: []engine.Result{data(0, "emptyDir", "state", `container "main" at /data/`, "under data path /data", warn)},
		},
		{
			name: "a data path match even beside a volumeClaimTemplate of another name",
			obj:  sts("db", claimTemplate("pgdata"), volume(emptyDir("state")), mount("state", "/data/db")),
			want: []engine.Result{data(0, "emptyDir", "state", `container "main" at /data/db`, "under data path /data", warn)},
		},
		{
			name: "near misses by path segment are not data",
			obj: sts("db", volume(emptyDir("state")), mount("state", "/database"), mount("state", "/opt/app/var/lib/x"),
				mount("state", "/var/library")),
		},
		{
			name: "data volume names and globs",
			obj: sts("db", volume(emptyDir("datadir")), volume(emptyDir("my-data")), volume(emptyDir("data-x")), volume(emptyDir("x-storage")),
				mount("datadir", "/srv/a"), mount("my-data", "/srv/b"), mount("data-x", "/srv/c"), mount("x-storage", "/srv/d")),
			want: []engine.Result{
				data(0, "emptyDir", "datadir", `container "main" at /srv/a`, `"datadir" is a data volume name`, warn),
				data(1, "emptyDir", "my-data", `container "main" at /srv/b`, `its name matches data volume name "*-data"`, warn),
				data(2, "emptyDir", "data-x", `container "main" at /srv/c`, `its name matches data volume name "data-*"`, warn),
				data(3, "emptyDir", "x-storage", `container "main" at /srv/d`, `its name matches data volume name "*-storage"`, warn),
			},
		},
		{
			name: "names that only contain a data word are not data",
			obj:  sts("db", volume(emptyDir("metadata")), volume(emptyDir("database")), mount("metadata", "/srv/a"), mount("database", "/srv/b")),
		},
		// Strong evidence takes the rule's action.
		{
			name: "a data name at a data path",
			obj:  sts("db", volume(emptyDir("data")), mount("data", "/data")),
			want: []engine.Result{data(0, "emptyDir", "data", `container "main" at /data`, `under data path /data, "data" is a data volume name`, deny)},
		},
		{
			name: "the data annotation, a comma list with spaces",
			obj:  sts("db", annotated(engine.AnnotationDataVolumes, "cache, state"), volume(emptyDir("state")), mount("state", "/srv/state")),
			want: []engine.Result{data(0, "emptyDir", "state", `container "main" at /srv/state`, "named in the annotation stateguard.io/data-volumes", deny)},
		},
		{
			name: "a known image's data directory, whatever the volume's name",
			obj:  sts("db", image("docker.io/bitnami/postgresql:17.6.0"), volume(emptyDir("state")), mount("state", "/bitnami/postgresql")),
			want: []engine.Result{data(0, "emptyDir", "state", `container "main" at /bitnami/postgresql`, "where postgresql keeps its data", deny)},
		},
		{
			name: "a CI server's home with persistence off",
			obj:  sts("db", image("jenkins/jenkins:2.516-jdk21"), volume(emptyDir("jenkins-home")), mount("jenkins-home", "/var/jenkins_home")),
			want: []engine.Result{data(0, "emptyDir", "jenkins-home", `container "main" at /var/jenkins_home`, "where jenkins keeps its data", deny)},
		},
		{
			name: "above the data directory",
			obj:  sts("db", image("bitnami/redis:8.2"), volume(emptyDir("redis-vol")), mount("redis-vol", "/bitnami/redis")),
			want: []engine.Result{data(0, "emptyDir", "redis-vol", `container "main" at /bitnami/redis`, "where redis keeps its data", deny)},
		},
		{
			name: "one shared emptyDir, its subPaths judged one by one: the data directory among scratch",
			obj: sts("db", image("docker.io/bitnami/etcd:3.6"), volume(emptyDir("empty-dir")), subPathMount("empty-dir", "/tmp", "tmp-dir"),
				subPathMount("empty-dir", "/opt/bitnami/etcd/conf", "app-conf-dir"), subPathMount("empty-dir", "/bitnami/etcd/data", "app-data-dir")),
			want: []engine.Result{data(0, "emptyDir", "empty-dir", `container "main" at /bitnami/etcd/data`, "inside /bitnami/etcd, where etcd keeps its data", deny)},
		},
		{
			name: "a data subPath of an unknown image says nothing: Keycloak's app-data-dir is scratch",
			obj:  sts("db", volume(emptyDir("empty-dir")), subPathMount("empty-dir", "/opt/bitnami/keycloak/data", "app-data-dir")),
		},
		{
			name: "one result for a volume three containers mount",
			obj: sts("db", volume(emptyDir("data")), mount("data", "/data"), func(s *appsv1.StatefulSet) {
				for _, name := range []string{"sentinel", "exporter"} {
					s.Spec.Template.Spec.Containers = append(s.Spec.Template.Spec.Containers,
						corev1.Container{Name: name, Image: "busybox", VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}})
				}
			}),
			want: []engine.Result{data(0, "emptyDir", "data", `container "main" at /data and container "sentinel" at /data and container "exporter" at /data`,
				`under data path /data, "data" is a data volume name`, deny)},
		},
		// Scratch, whatever the name or path says.
		{
			name: "medium Memory is scratch even under a data path",
			obj:  sts("db", volume(memory("data")), mount("data", "/data")),
		},
		{
			name: "scratch paths are scratch even for a data volume name",
			obj:  sts("db", volume(emptyDir("data")), mount("data", "/tmp"), mount("data", "/var/run/app")),
		},
		{
			name: "a configuration directory named like data: a sentinel's regenerated config",
			obj:  sts("db", image("bitnami/redis-sentinel:8.2"), volume(emptyDir("sentinel-data")), mount("sentinel-data", "/opt/bitnami/redis-sentinel/etc")),
		},
		{
			name: "a scanner's re-downloadable database in a cache directory",
			obj:  sts("db", volume(emptyDir("data")), mount("data", "/home/scanner/.cache")),
		},
		{
			name: "search nodes without a data role",
			obj: sts("db", image("docker.elastic.co/elasticsearch/elasticsearch:9.1.2"), env("node.roles", "ingest,"),
				volume(emptyDir("data")), mount("data", "/usr/share/elasticsearch/data")),
		},
		{
			name: "search nodes with one",
			obj: sts("db", image("docker.elastic.co/elasticsearch/elasticsearch:9.1.2"), env("node.roles", "master,data_hot"),
				volume(emptyDir("data")), mount("data", "/usr/share/elasticsearch/data")),
			want: []engine.Result{data(0, "emptyDir", "data", `container "main" at /usr/share/elasticsearch/data`, "where elasticsearch keeps its data", deny)},
		},
		{
			name: "a Redis run as a cache, snapshots off",
			obj: sts("db", image("ecr-public.aws.com/docker/library/redis:8.2.3-alpine"), args("--save", "", "--appendonly", "no"),
				volume(emptyDir("data")), mount("data", "/data")),
		},
		{
			name: "a subdirectory overlaid on a persisted data directory",
			obj: sts("db", image("jenkins/jenkins:lts"), claimTemplate("jenkins-home"), mount("jenkins-home", "/var/jenkins_home"),
				volume(emptyDir("war")), mount("war", "/var/jenkins_home/war")),
		},
		{
			name: "the scratch annotation wins over a data path and the data annotation",
			obj: sts("db", annotated(engine.AnnotationScratchVolumes, "x, data"), annotated(engine.AnnotationDataVolumes, "data"),
				volume(emptyDir("data")), mount("data", "/var/lib/cache")),
		},
		{
			name: "read-only mounts hold no data written by the Pod",
			obj:  sts("db", volume(emptyDir("data")), mount("data", "/data"), readOnly),
		},
		{
			name: "a sidecar init container counts",
			obj:  sts("db", volume(emptyDir("state")), initContainer(true)),
			want: []engine.Result{data(0, "emptyDir", "state", `container "init" at /data`, "under data path /data", warn)},
		},
		{
			name: "an ordinary init container does not",
			obj:  sts("db", volume(emptyDir("state")), initContainer(false)),
		},
		{
			name: "a volume shadowed by a volumeClaimTemplate is dead config, not a violation",
			obj:  sts("db", claimTemplate("data"), volume(emptyDir("data")), mount("data", "/var/lib/postgresql/data")),
			want: []engine.Result{{Rule: rule, Action: engine.ActionWarn, Kind: "StatefulSet", Namespace: "shop", Name: "db",
				Field: fieldPath("spec.template.spec.volumes[0]"),
				Message: `volume "data" is replaced by the volumeClaimTemplate of the same name, so its emptyDir source is never used: ` +
					`remove it from spec.template.spec.volumes`}},
		},
		{
			name: "data on a volumeClaimTemplate, scratch on emptyDir",
			obj:  sts("db", claimTemplate("data"), mount("data", "/var/lib/postgresql/data"), volume(emptyDir("tmp")), mount("tmp", "/tmp")),
		},
		{
			name: "Bitnami's empty-dir scratch volume",
			obj: sts("db", image("bitnami/postgresql:17"), claimTemplate("data"), mount("data", "/bitnami/postgresql"), volume(emptyDir("empty-dir")),
				subPathMount("empty-dir", "/tmp", "tmp-dir"), subPathMount("empty-dir", "/opt/bitnami/postgresql/conf", "app-conf-dir"),
				subPathMount("empty-dir", "/opt/bitnami/postgresql/tmp", "app-tmp-dir")),
		},
		{
			name: "Vault's and Argo CD's home directories",
			obj:  sts("db", volume(emptyDir("home")), mount("home", "/home/vault"), volume(emptyDir("argocd-home")), mount("argocd-home", "/home/argocd")),
		},
		{
			name:   "configured paths and names replace the defaults",
			config: "rules:\n  statefulset-emptydir-data: {scratchPaths: [/scratch], dataPaths: [/srv/db], dataVolumeNames: [\"pg*\"]}\n",
			obj: sts("db", volume(emptyDir("data")), volume(emptyDir("pgwal")), volume(emptyDir("state")),
				mount("data", "/data"), mount("pgwal", "/wal"), mount("state", "/srv/db/x"), mount("pgwal", "/scratch/pg")),
			want: []engine.Result{
				data(1, "emptyDir", "pgwal", `container "main" at /wal`, `its name matches data volume name "pg*"`, warn),
				data(2, "emptyDir", "state", `container "main" at /srv/db/x`, "under data path /srv/db", warn),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := judgeStatefulSet(t, newEngine(t, tt.config), context.Background(), tt.obj, nil, index(headlessSvc("db", map[string]string{"app": "db"})))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(engine.Verdict{Results: tt.want}, got, ignoreIntended); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestHeadlessServiceFixesOnUpdate: spec.serviceName is immutable, so the
// fixes of an UPDATE change the Service or the Pod labels, never it.
func TestHeadlessServiceFixesOnUpdate(t *testing.T) {
	app := map[string]string{"app": "db"}
	for _, tt := range []struct {
		name    string
		obj     *appsv1.StatefulSet
		service *corev1.Service
		want    string
	}{
		{"missing", sts("db"), nil, `(spec.serviceName cannot change on an existing StatefulSet)`},
		{"not headless", sts("db"), func() *corev1.Service { s := headlessSvc("db", app); s.Spec.ClusterIP = "10.96.0.7"; return s }(),
			`delete Service "db" and create it again with type: ClusterIP and clusterIP: None (spec.serviceName cannot change on an existing StatefulSet)`},
		{"a LoadBalancer", sts("db"), func() *corev1.Service {
			s := headlessSvc("db", app)
			s.Spec.Type = corev1.ServiceTypeLoadBalancer
			return s
		}(),
			`delete Service "db" and create it again with type: ClusterIP and clusterIP: None`},
		{"selecting other labels", sts("db"), headlessSvc("db", map[string]string{"app": "postgres"}), `or change the selector of Service "db" to labels the Pods have`},
		{"empty", sts("db", func(s *appsv1.StatefulSet) { s.Spec.ServiceName = "" }), nil, "delete it with --cascade=orphan"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			objs := []any{}
			if tt.service != nil {
				objs = append(objs, tt.service)
			}
			got, err := judgeStatefulSet(t, newEngine(t, ""), context.Background(), tt.obj, sts("db"), index(objs...))
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Results) != 1 || !strings.Contains(got.Results[0].Message, tt.want) || strings.Contains(got.Results[0].Message, "set spec.serviceName to") ||
				strings.Contains(got.Results[0].Message, "point spec.serviceName") {
				t.Errorf("results %+v: want one whose fix says %q and leaves spec.serviceName alone", got.Results, tt.want)
			}
		})
	}
}
