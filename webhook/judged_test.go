package webhook

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/randfill"

	"github.com/stateguard/stateguard/engine"
)

// TestJudgedDecodeKeepsWhatRulesRead: the validating handlers decode a
// workload into the judged types, which must keep exactly what
// engine.TrimStatefulSet and TrimDeployment keep (the engine's tests prove
// that the trimmed workload gets the whole one's verdict). Workloads with
// every field filled at random are decoded both ways and compared.
func TestJudgedDecodeKeepsWhatRulesRead(t *testing.T) {
	fill := randfill.NewWithSeed(1).NilChance(0.1).NumElements(1, 2).Funcs(
		// Values whose JSON form is not made of their exported fields.
		func(q *resource.Quantity, c randfill.Continue) {
			*q = *resource.NewQuantity(c.Int63n(1000), resource.DecimalSI)
		},
		func(tm *metav1.Time, c randfill.Continue) { *tm = metav1.Unix(c.Int63n(1<<32), 0) },
		func(d *metav1.Duration, c randfill.Continue) { d.Duration = time.Duration(c.Int63n(1 << 32)) },
		func(f *metav1.FieldsV1, _ randfill.Continue) { f.Raw = []byte(`{"f:spec":{}}`) },
	)
	for i := range 50 {
		var sts appsv1.StatefulSet
		fill.Fill(&sts)
		var judgedSts judgedStatefulSet
		compareJudged(t, i, &sts, &appsv1.StatefulSet{}, &judgedSts, func() any { return judgedSts.object() },
			func(whole any) any { return engine.TrimStatefulSet(whole.(*appsv1.StatefulSet)) })

		var dep appsv1.Deployment
		fill.Fill(&dep)
		var judgedDep judgedDeployment
		compareJudged(t, i, &dep, &appsv1.Deployment{}, &judgedDep, func() any { return judgedDep.object() },
			func(whole any) any { return engine.TrimDeployment(whole.(*appsv1.Deployment)) })
	}
}

// compareJudged encodes filled, decodes it whole and judged, and
// compares the trimmed whole object with the judged one.
func compareJudged(t *testing.T, i int, filled, whole, judged any, judgedObject func() any, trim func(any) any) {
	t.Helper()
	body, err := json.Marshal(filled)
	if err != nil {
		t.Fatal(err)
	}
	if err := unmarshal(body, whole); err != nil {
		t.Fatalf("object %d decoded whole: %v", i, err)
	}
	if err := unmarshal(body, judged); err != nil {
		t.Fatalf("object %d decoded judged: %v", i, err)
	}
	if diff := cmp.Diff(trim(whole), judgedObject()); diff != "" {
		t.Errorf("object %d: the judged decoding is not the trimmed object (-trimmed +judged):\n%s", i, diff)
	}
}
