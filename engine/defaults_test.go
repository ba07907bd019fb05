package engine_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stateguard/stateguard/engine"
)

const (
	parallel    = appsv1.ParallelPodManagement
	orderly     = appsv1.OrderedReadyPodManagement
	retain      = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	deleteClaim = appsv1.DeletePersistentVolumeClaimRetentionPolicyType
)

// serverDefaulted is a StatefulSet as the API server hands it to a mutating
// webhook: its own defaults already filled in.
func serverDefaulted(opts ...func(*appsv1.StatefulSet)) *appsv1.StatefulSet {
	s := sts("db", func(s *appsv1.StatefulSet) {
		s.Spec.PodManagementPolicy = orderly
		s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenDeleted: retain, WhenScaled: retain}
	})
	for _, o := range opts {
		o(s)
	}
	return s
}

func policy(p appsv1.PodManagementPolicyType) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) { s.Spec.PodManagementPolicy = p }
}

func retention(deleted, scaled appsv1.PersistentVolumeClaimRetentionPolicyType) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) {
		s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenDeleted: deleted, WhenScaled: scaled}
	}
}

func managedBy(op metav1.ManagedFieldsOperationType, fields string) func(*appsv1.StatefulSet) {
	return func(s *appsv1.StatefulSet) {
		s.ManagedFields = append(s.ManagedFields, metav1.ManagedFieldsEntry{
			Manager: "kubectl", Operation: op, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)},
		})
	}
}

const (
	allDefaults  = "defaults: {podManagementPolicy: Parallel, persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Delete}}\n"
	allDefaulted = "persistentVolumeClaimRetentionPolicy.whenDeleted,persistentVolumeClaimRetentionPolicy.whenScaled,podManagementPolicy"
)

func TestDefaultStatefulSet(t *testing.T) {
	tests := []struct {
		name         string
		config       string
		ns           map[string]string
		obj, old     *appsv1.StatefulSet
		want         *appsv1.StatefulSet
		wantChanged  []string
		wantWarnings []string
	}{
		{
			name:        "no configured defaults leave the object alone",
			obj:         serverDefaulted(),
			want:        serverDefaulted(),
			wantChanged: nil,
		},
		{
			name:        "CREATE: every configured default lands on Kubernetes defaults",
			config:      allDefaults,
			obj:         serverDefaulted(),
			want:        serverDefaulted(policy(parallel), retention(deleteClaim, deleteClaim), annotated(engine.AnnotationDefaulted, allDefaulted)),
			wantChanged: []string{engine.FieldPodManagementPolicy, engine.FieldWhenDeleted, engine.FieldWhenScaled},
		},
		{
			name:        "CREATE: unset fields (not yet server-defaulted) count as Kubernetes defaults",
			config:      allDefaults,
			obj:         sts("db"),
			want:        sts("db", policy(parallel), retention(deleteClaim, deleteClaim), annotated(engine.AnnotationDefaulted, allDefaulted)),
			wantChanged: []string{engine.FieldPodManagementPolicy, engine.FieldWhenDeleted, engine.FieldWhenScaled},
		},
		{
			name:   "CREATE: a value other than the Kubernetes default is the user's",
			config: allDefaults,
			obj:    serverDefaulted(policy(parallel), retention(deleteClaim, retain)),
			want: serverDefaulted(policy(parallel), retention(deleteClaim, deleteClaim),
				annotated(engine.AnnotationDefaulted, engine.FieldWhenScaled)),
			wantChanged: []string{engine.FieldWhenScaled},
		},
		{
			name:   "CREATE: fields in the last-applied configuration are the user's",
			config: allDefaults,
			obj: serverDefaulted(annotated(engine.AnnotationLastAppliedConfiguration,
				`{"apiVersion":"apps/v1","kind":"StatefulSet","spec":{"podManagementPolicy":"OrderedReady","persistentVolumeClaimRetentionPolicy":{"whenScaled":"Retain"}}}`)),
			want: serverDefaulted(policy(orderly), retention(deleteClaim, retain),
				annotated(engine.AnnotationLastAppliedConfiguration,
					`{"apiVersion":"apps/v1","kind":"StatefulSet","spec":{"podManagementPolicy":"OrderedReady","persistentVolumeClaimRetentionPolicy":{"whenScaled":"Retain"}}}`),
				annotated(engine.AnnotationDefaulted, engine.FieldWhenDeleted)),
			wantChanged: []string{engine.FieldWhenDeleted},
		},
		{
			name:        "CREATE: a last-applied configuration without the fields is no evidence",
			config:      allDefaults,
			obj:         serverDefaulted(annotated(engine.AnnotationLastAppliedConfiguration, `{"spec":{"replicas":3}}`)),
			want:        serverDefaulted(annotated(engine.AnnotationLastAppliedConfiguration, `{"spec":{"replicas":3}}`), policy(parallel), retention(deleteClaim, deleteClaim), annotated(engine.AnnotationDefaulted, allDefaulted)),
			wantChanged: []string{engine.FieldPodManagementPolicy, engine.FieldWhenDeleted, engine.FieldWhenScaled},
		},
		{
			name:   "CREATE: fields owned by a server-side apply are the user's",
			config: allDefaults,
			obj:    serverDefaulted(managedBy(metav1.ManagedFieldsOperationApply, `{"f:spec":{"f:podManagementPolicy":{},"f:persistentVolumeClaimRetentionPolicy":{"f:whenDeleted":{}}}}`)),
			want: serverDefaulted(managedBy(metav1.ManagedFieldsOperationApply, `{"f:spec":{"f:podManagementPolicy":{},"f:persistentVolumeClaimRetentionPolicy":{"f:whenDeleted":{}}}}`),
				retention(retain, deleteClaim), annotated(engine.AnnotationDefaulted, engine.FieldWhenScaled)),
			wantChanged: []string{engine.FieldWhenScaled},
		},
		{
			name:        "CREATE: fields owned by an Update operation are no evidence",
			config:      allDefaults,
			obj:         serverDefaulted(managedBy(metav1.ManagedFieldsOperationUpdate, `{"f:spec":{"f:podManagementPolicy":{}}}`)),
			want:        serverDefaulted(managedBy(metav1.ManagedFieldsOperationUpdate, `{"f:spec":{"f:podManagementPolicy":{}}}`), policy(parallel), retention(deleteClaim, deleteClaim), annotated(engine.AnnotationDefaulted, allDefaulted)),
			wantChanged: []string{engine.FieldPodManagementPolicy, engine.FieldWhenDeleted, engine.FieldWhenScaled},
		},
		{
			name:        "CREATE: namespace annotations override the configured defaults",
			config:      allDefaults,
			ns:          map[string]string{engine.AnnotationPodManagementPolicy: "OrderedReady", engine.AnnotationRetentionWhenScaled: "Retain"},
			obj:         serverDefaulted(),
			want:        serverDefaulted(retention(deleteClaim, retain), annotated(engine.AnnotationDefaulted, engine.FieldWhenDeleted)),
			wantChanged: []string{engine.FieldWhenDeleted},
		},
		{
			name:        "CREATE: namespace annotations default where the configuration does not",
			ns:          map[string]string{engine.AnnotationPodManagementPolicy: "Parallel"},
			obj:         serverDefaulted(),
			want:        serverDefaulted(policy(parallel), annotated(engine.AnnotationDefaulted, engine.FieldPodManagementPolicy)),
			wantChanged: []string{engine.FieldPodManagementPolicy},
		},
		{
			name:         "CREATE: a bad namespace annotation is ignored with a warning",
			config:       "defaults: {podManagementPolicy: Parallel}\n",
			ns:           map[string]string{engine.AnnotationPodManagementPolicy: "parallel"},
			obj:          serverDefaulted(),
			want:         serverDefaulted(policy(parallel), annotated(engine.AnnotationDefaulted, engine.FieldPodManagementPolicy)),
			wantChanged:  []string{engine.FieldPodManagementPolicy},
			wantWarnings: []string{`namespace "shop": metadata.annotations[stateguard.io/pod-management-policy]: Unsupported value: "parallel": supported values: "OrderedReady", "Parallel"; ignored`},
		},
		{
			name:        "CREATE: the defaulted annotation keeps names already listed",
			config:      "defaults: {podManagementPolicy: Parallel}\n",
			obj:         serverDefaulted(annotated(engine.AnnotationDefaulted, engine.FieldWhenDeleted)),
			want:        serverDefaulted(policy(parallel), annotated(engine.AnnotationDefaulted, engine.FieldWhenDeleted+","+engine.FieldPodManagementPolicy)),
			wantChanged: []string{engine.FieldPodManagementPolicy},
		},
		{
			name:        "UPDATE: a stored Parallel is restored when the manifest omitted the field",
			config:      allDefaults,
			obj:         serverDefaulted(),
			old:         serverDefaulted(policy(parallel), retention(deleteClaim, retain)),
			want:        serverDefaulted(policy(parallel), retention(deleteClaim, retain), annotated(engine.AnnotationDefaulted, engine.FieldWhenDeleted+","+engine.FieldPodManagementPolicy)),
			wantChanged: []string{engine.FieldPodManagementPolicy, engine.FieldWhenDeleted},
		},
		{
			name:        "UPDATE: restores also without configured defaults (the value may predate them)",
			obj:         serverDefaulted(),
			old:         serverDefaulted(policy(parallel)),
			want:        serverDefaulted(policy(parallel), annotated(engine.AnnotationDefaulted, engine.FieldPodManagementPolicy)),
			wantChanged: []string{engine.FieldPodManagementPolicy},
		},
		{
			name:   "UPDATE: no restore when the last-applied configuration sets the field",
			config: allDefaults,
			obj:    serverDefaulted(annotated(engine.AnnotationLastAppliedConfiguration, `{"spec":{"podManagementPolicy":"OrderedReady"}}`)),
			old:    serverDefaulted(policy(parallel)),
			want:   serverDefaulted(annotated(engine.AnnotationLastAppliedConfiguration, `{"spec":{"podManagementPolicy":"OrderedReady"}}`)),
		},
		{
			name:   "UPDATE: configured defaults do not land on existing objects",
			config: allDefaults,
			obj:    serverDefaulted(),
			old:    serverDefaulted(),
			want:   serverDefaulted(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng := newEngine(t, tt.config)
			lk := index(shopNamespace(tt.ns))
			obj := tt.obj.DeepCopy()
			changed, warnings, err := eng.DefaultStatefulSet(context.Background(), obj, tt.old, lk)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, obj); diff != "" {
				t.Errorf("object (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantChanged, changed); diff != "" {
				t.Errorf("changed (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantWarnings, warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}

			// Defaulting twice equals defaulting once: the mutating webhook is reinvoked.
			again := obj.DeepCopy()
			if changed, _, err := eng.DefaultStatefulSet(context.Background(), again, tt.old, lk); err != nil || len(changed) > 0 {
				t.Errorf("second pass changed %v (err %v)", changed, err)
			}
			if diff := cmp.Diff(obj, again); diff != "" {
				t.Errorf("second pass (-first +second):\n%s", diff)
			}
		})
	}
}
