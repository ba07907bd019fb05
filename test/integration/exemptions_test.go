package integration

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// exemptionPolicy honours the annotation for the group platform-team only,
// and exempts legacy-* from the headless Service rule; old-* was exempt
// until 2020.
const exemptionPolicy = `apiVersion: stateguard.io/v1alpha1
kind: Config
allowObjectExemptions: true
objectExemptionGrantors: {groups: [platform-team]}
exemptions:
  - {name: legacy, names: ["legacy-*"], kinds: [StatefulSet], rules: [statefulset-headless-service], reason: migrating to a headless Service (PLAT-7)}
  - {name: old, names: ["old-*"], rules: [all], reason: gone, expires: "2020-01-01"}
`

// TestExemptionsOnlyThePlatformTeamGrants drives kubectl as users who may
// write StatefulSets in one namespace and nothing else, as the API server sees them
// (impersonation): the annotation exempts only for the granting group,
// policy exemptions apply to what they match until they expire, and each
// exempt admission is logged with its requester.
func TestExemptionsOnlyThePlatformTeamGrants(t *testing.T) {
	setMainPolicy(t, exemptionPolicy)
	ns := namespace(t, nil, nil)
	// A Role of their own: the bootstrap edit role is aggregated by the
	// controller manager, which this API server runs without.
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "statefulsets", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"statefulsets"}, Verbs: []string{"get", "list", "create", "update", "patch"}}},
	}
	if _, err := clientset.RbacV1().Roles(ns).Create(context.Background(), role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "statefulsets", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "statefulsets"},
		Subjects: []rbacv1.Subject{
			{APIGroup: rbacv1.GroupName, Kind: "User", Name: "alice"},
			{APIGroup: rbacv1.GroupName, Kind: "User", Name: "bob"},
		},
	}
	if _, err := clientset.RbacV1().RoleBindings(ns).Create(context.Background(), binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	annotated := func(name string) string {
		return strings.Replace(statefulSetWithoutService(name), "metadata: {name: "+name+"}",
			"metadata: {name: "+name+", annotations: {stateguard.io/exempt: statefulset-headless-service}}", 1)
	}
	bob := []string{"--as=bob", "--as-group=developers"}
	alice := []string{"--as=alice", "--as-group=platform-team"}

	// A developer cannot exempt: denied, and told who can.
	stderr := mustDeny(t, ns, annotated("db"), bob...)
	contains(t, stderr, "ask the platform team for an exemption from statefulset-headless-service in stateguard's policy",
		"Warning: annotation stateguard.io/exempt is ignored: bob may not exempt an object (only group platform-team may)")
	// The platform team can.
	if stderr := mustApply(t, ns, annotated("db"), alice...); stderr != "" {
		t.Errorf("alice's exempt StatefulSet: stderr %q, want none", stderr)
	}
	// A policy exemption applies to the names it matches, whoever asks.
	mustApply(t, ns, statefulSetWithoutService("legacy-orders"), bob...)
	mustDeny(t, ns, statefulSetWithoutService("orders"), bob...)
	// An expired one no longer does, and says so.
	stderr = mustDeny(t, ns, statefulSetWithoutService("old-orders"), bob...)
	contains(t, stderr, `Warning: exemption "old" expired at 2020-01-01T00:00:00Z: it no longer exempts statefulset-headless-service`)

	// Each exempt admission is logged at info with the requester.
	var logged []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(logged) < 2; time.Sleep(200 * time.Millisecond) {
		log, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		logged = nil
		for l := range strings.Lines(string(log)) {
			if strings.Contains(l, `"msg":"exempt"`) && strings.Contains(l, `"namespace":"`+ns+`"`) {
				logged = append(logged, l)
			}
		}
	}
	if len(logged) != 2 {
		t.Fatalf("exempt admissions logged: %q, want 2", logged)
	}
	contains(t, logged[0], `"level":"info"`, `"name":"db"`, `"rule":"statefulset-headless-service"`, `"requester":"alice"`, `"exemption":"annotation stateguard.io/exempt"`)
	contains(t, logged[1], `"name":"legacy-orders"`, `"requester":"bob"`, `"exemption":"exemption \"legacy\": migrating to a headless Service (PLAT-7)"`)
}
