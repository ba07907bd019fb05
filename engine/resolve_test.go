package engine_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateguard/stateguard/engine"
)

const missingDBService = `Service "db" not found in namespace "shop", so the Pods get no stable DNS names: ` +
	`create a headless Service (clusterIP: None) named "db" whose selector matches spec.template.metadata.labels, ` +
	`or set spec.serviceName to an existing one; if the Pods need no stable DNS names, ask the platform team for an exemption from statefulset-headless-service in stateguard's policy`

const dataOnEmptyDir = `emptyDir volume "data" is mounted read-write by container "main" at /data (under data path /data, "data" is a data volume name), and its data is lost when the Pod is deleted: ` +
	`move it to spec.volumeClaimTemplates (a claim template named "data" replaces the volume); ` +
	`if it only holds scratch data, name it in the annotation stateguard.io/scratch-volumes`

func headlessResult(action engine.Action) engine.Result {
	return engine.Result{Rule: engine.RuleHeadlessService, Action: action, Kind: "StatefulSet", Namespace: "shop", Name: "db",
		Field: fieldPath("spec.serviceName"), Message: missingDBService, Intended: action}
}

func emptyDirResult(action engine.Action) engine.Result {
	return engine.Result{Rule: engine.RuleEmptyDirData, Action: action, Kind: "StatefulSet", Namespace: "shop", Name: "db",
		Field: fieldPath("spec.template.spec.volumes[0]"), Message: dataOnEmptyDir, Intended: action}
}

// onUpdate is a headless Service result of an UPDATE: its fix leaves the
// immutable spec.serviceName alone.
func onUpdate(r engine.Result) engine.Result {
	r.Message = strings.Replace(r.Message, ", or set spec.serviceName to an existing one", " (spec.serviceName cannot change on an existing StatefulSet)", 1)
	return r
}

// capped is a result whose action an enforcement cap lowered from intended.
func capped(r engine.Result, intended engine.Action) engine.Result {
	r.Intended = intended
	return r
}

const unknownExemptRule = `annotation stateguard.io/exempt: unknown rule "statefulset-headless": must be "all" or one of ` +
	`statefulset-headless-service, statefulset-emptydir-data, statefulset-shared-rwo-pvc, deployment-shared-rwo-pvc, deployment-rwo-rolling-update, deployment-emptydir-data, data-directory-unmounted`

func annotated(key, value string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[key] = value
	}
}

// dataOnEmptyDirVolume mounts an emptyDir named data at /data.
func dataOnEmptyDirVolume(s *appsv1.StatefulSet) {
	s.Spec.Template.Spec.Volumes = append(s.Spec.Template.Spec.Volumes,
		corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	c := &s.Spec.Template.Spec.Containers[0]
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: "/data"})
}

func shopNamespace(annotations map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Annotations: annotations}}
}

// TestResolve covers actions, caps, exemptions and UPDATE on a StatefulSet
// whose headless Service is missing (and, in some rows, whose data is on emptyDir).
func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		config  string
		ns      map[string]string // namespace annotations
		lookups []any             // beside the namespace
		obj     *appsv1.StatefulSet
		old     *appsv1.StatefulSet
		want    engine.Verdict
	}{
		{
			name: "the rule's default action",
			obj:  sts("db"),
			want: engine.Verdict{Results: []engine.Result{headlessResult(engine.ActionDeny)}},
		},
		{
			name:   "a rule set to warn",
			config: "rules: {statefulset-headless-service: {action: warn}}\n",
			obj:    sts("db"),
			want:   engine.Verdict{Results: []engine.Result{headlessResult(engine.ActionWarn)}},
		},
		{
			name:   "a rule set to dryrun",
			config: "rules: {statefulset-headless-service: {action: dryrun}}\n",
			obj:    sts("db"),
			want:   engine.Verdict{Results: []engine.Result{headlessResult(engine.ActionDryRun)}},
		},
		{
			name:   "a rule that is off reports nothing",
			config: "rules: {statefulset-headless-service: {action: off}}\n",
			obj:    sts("db"),
			want:   engine.Verdict{},
		},
		{
			name:   "global enforcement warn caps deny",
			config: "enforcement: warn\n",
			obj:    sts("db"),
			want:   engine.Verdict{Results: []engine.Result{capped(headlessResult(engine.ActionWarn), engine.ActionDeny)}},
		},
		{
			name:   "global enforcement dryrun caps every rule",
			config: "enforcement: dryrun\n",
			obj:    sts("db", dataOnEmptyDirVolume),
			want: engine.Verdict{Silent: true, Results: []engine.Result{
				capped(headlessResult(engine.ActionDryRun), engine.ActionDeny), capped(emptyDirResult(engine.ActionDryRun), engine.ActionDeny),
			}},
		},
		{
			name: "the namespace annotation caps deny to warn",
			ns:   map[string]string{engine.AnnotationEnforcement: "warn"},
			obj:  sts("db"),
			want: engine.Verdict{Results: []engine.Result{capped(headlessResult(engine.ActionWarn), engine.ActionDeny)}},
		},
		{
			name: "the namespace annotation dryrun silences the object's warnings too",
			ns:   map[string]string{engine.AnnotationEnforcement: "dryrun"},
			obj:  sts("db", annotated(engine.AnnotationExempt, "statefulset-headless")),
			want: engine.Verdict{
				Silent:   true,
				Results:  []engine.Result{capped(headlessResult(engine.ActionDryRun), engine.ActionDeny)},
				Warnings: []string{unknownExemptRule},
			},
		},
		{
			name:    "global enforcement dryrun silences the warnings of a compliant object",
			config:  "enforcement: dryrun\n",
			lookups: []any{headlessSvc("db", map[string]string{"app": "db"})},
			obj:     sts("db", annotated(engine.AnnotationExempt, "statefulset-headless")),
			want:    engine.Verdict{Silent: true, Warnings: []string{unknownExemptRule}},
		},
		{
			name:   "the namespace annotation cannot raise the global cap",
			config: "enforcement: dryrun\n",
			ns:     map[string]string{engine.AnnotationEnforcement: "deny"},
			obj:    sts("db"),
			want:   engine.Verdict{Silent: true, Results: []engine.Result{capped(headlessResult(engine.ActionDryRun), engine.ActionDeny)}},
		},
		{
			name: "an unsupported namespace annotation is ignored with a warning",
			ns:   map[string]string{engine.AnnotationEnforcement: "audit"},
			obj:  sts("db"),
			want: engine.Verdict{
				Results:  []engine.Result{headlessResult(engine.ActionDeny)},
				Warnings: []string{`namespace "shop": annotation stateguard.io/enforcement: unsupported value "audit": must be one of deny, warn, dryrun; ignored`},
			},
		},
		{
			name:   "an exemption of one rule",
			config: objectExemptionsOn,
			obj:    sts("db", dataOnEmptyDirVolume, annotated(engine.AnnotationExempt, "statefulset-headless-service")),
			want:   engine.Verdict{Results: []engine.Result{byAnnotation(headlessResult(engine.ActionExempt)), emptyDirResult(engine.ActionDeny)}},
		},
		{
			name:   "an exemption of two rules, with spaces",
			config: objectExemptionsOn,
			obj:    sts("db", dataOnEmptyDirVolume, annotated(engine.AnnotationExempt, "statefulset-headless-service, statefulset-emptydir-data")),
			want:   engine.Verdict{Results: []engine.Result{byAnnotation(headlessResult(engine.ActionExempt)), byAnnotation(emptyDirResult(engine.ActionExempt))}},
		},
		{
			name:   "an exemption of all rules",
			config: objectExemptionsOn,
			obj:    sts("db", dataOnEmptyDirVolume, annotated(engine.AnnotationExempt, "all")),
			want:   engine.Verdict{Results: []engine.Result{byAnnotation(headlessResult(engine.ActionExempt)), byAnnotation(emptyDirResult(engine.ActionExempt))}},
		},
		{
			name: "an unknown rule in the exemption is named in a warning",
			obj:  sts("db", annotated(engine.AnnotationExempt, "statefulset-headless")),
			want: engine.Verdict{
				Results:  []engine.Result{headlessResult(engine.ActionDeny)},
				Warnings: []string{unknownExemptRule},
			},
		},
		{
			name: "the annotation is ignored by default, and the warning says how to exempt",
			obj:  sts("db", annotated(engine.AnnotationExempt, "all")),
			want: engine.Verdict{Results: []engine.Result{headlessResult(engine.ActionDeny)}, Warnings: []string{
				"annotation stateguard.io/exempt is ignored: object exemptions are off; the platform team grants exemptions in stateguard's policy, as: " +
					"exemptions: [{name: statefulset-shop-db, namespaces: [shop], kinds: [StatefulSet], names: [db], rules: [statefulset-headless-service], reason: ...}]",
			}},
		},
		{
			name: "UPDATE: a violation the old object had becomes a warning, a new one is denied",
			obj:  sts("db", dataOnEmptyDirVolume),
			old:  sts("db"),
			want: engine.Verdict{Results: []engine.Result{onUpdate(headlessResult(engine.ActionWarn)), emptyDirResult(engine.ActionDeny)}},
		},
		{
			name:   "UPDATE: an old violation of a dryrun rule stays dryrun",
			config: "rules: {statefulset-headless-service: {action: dryrun}}\n",
			obj:    sts("db"),
			old:    sts("db"),
			want:   engine.Verdict{Results: []engine.Result{onUpdate(headlessResult(engine.ActionDryRun))}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := judgeStatefulSet(t, newEngine(t, tt.config), context.Background(), tt.obj, tt.old, index(append(tt.lookups, shopNamespace(tt.ns))...))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, renderedPaths); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
