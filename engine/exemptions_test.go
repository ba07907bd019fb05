package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"

	"github.com/stateguard/stateguard/engine"
)

// objectExemptionsOn honours the annotation for the group platform and
// the ServiceAccount argocd/argocd-application-controller.
const objectExemptionsOn = `allowObjectExemptions: true
objectExemptionGrantors: {groups: [platform], serviceAccounts: [argocd/argocd-application-controller]}
`

func byAnnotation(r engine.Result) engine.Result {
	r.Exemption = "annotation stateguard.io/exempt"
	return r
}

func byExemption(r engine.Result, by string) engine.Result {
	r.Exemption = by
	return r
}

const searchExemption = `exemptions:
  - name: search-nodes
    namespaces: ["sh*"]
    kinds: [StatefulSet]
    names: ["d*"]
    rules: [statefulset-emptydir-data]
    reason: coordinating nodes keep no data (PLAT-123)
    expires: "2027-01-01"
`

func TestPolicyExemptions(t *testing.T) {
	bySearch := `exemption "search-nodes": coordinating nodes keep no data (PLAT-123)`
	tests := []struct {
		name   string
		config string
		obj    *appsv1.StatefulSet
		now    time.Time
		want   engine.Verdict
	}{
		{
			name:   "matching namespace, kind and name: exempt from the rules it names, with its reason",
			config: searchExemption,
			obj:    sts("db", dataOnEmptyDirVolume),
			want:   engine.Verdict{Results: []engine.Result{headlessResult(engine.ActionDeny), byExemption(emptyDirResult(engine.ActionExempt), bySearch)}},
		},
		{
			name:   "another name is not exempt",
			config: searchExemption,
			obj:    sts("cache", dataOnEmptyDirVolume),
			want:   engine.Verdict{Results: []engine.Result{renamed(headlessResult(engine.ActionDeny), "cache"), renamed(emptyDirResult(engine.ActionDeny), "cache")}},
		},
		{
			name:   "expired: the rule applies again, and a warning says so",
			config: searchExemption,
			obj:    sts("db", dataOnEmptyDirVolume),
			now:    time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
			want: engine.Verdict{
				Results:  []engine.Result{headlessResult(engine.ActionDeny), emptyDirResult(engine.ActionDeny)},
				Warnings: []string{`exemption "search-nodes" expired at 2027-01-01T00:00:00Z: it no longer exempts statefulset-emptydir-data`},
			},
		},
		{
			name: "a label selector, of all rules",
			config: `exemptions:
  - {name: legacy, selector: {matchLabels: {tier: legacy}}, rules: [all], reason: migrated by Q3}
`,
			obj: sts("db", dataOnEmptyDirVolume, func(s *appsv1.StatefulSet) { s.Labels = map[string]string{"tier": "legacy"} }),
			want: engine.Verdict{Results: []engine.Result{
				byExemption(headlessResult(engine.ActionExempt), `exemption "legacy": migrated by Q3`),
				byExemption(emptyDirResult(engine.ActionExempt), `exemption "legacy": migrated by Q3`),
			}},
		},
		{
			name: "a Deployment exemption leaves StatefulSets alone",
			config: `exemptions:
  - {name: web, namespaces: [shop], kinds: [Deployment], rules: [all], reason: x}
`,
			obj:  sts("db"),
			want: engine.Verdict{Results: []engine.Result{headlessResult(engine.ActionDeny)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, tt.config)
			now := tt.now
			if now.IsZero() {
				now = time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC)
			}
			engine.SetClock(e, func() time.Time { return now })
			got, err := judgeStatefulSet(t, e, context.Background(), tt.obj, nil, index(shopNamespace(nil)))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, renderedPaths); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func renamed(r engine.Result, name string) engine.Result {
	r.Name = name
	r.Message = strings.ReplaceAll(r.Message, `"db"`, `"`+name+`"`)
	return r
}

func TestObjectExemptionsOnlyForGrantors(t *testing.T) {
	exempted := sts("db", annotated(engine.AnnotationExempt, engine.RuleHeadlessService))
	tests := []struct {
		name       string
		config     string
		requester  *engine.Requester // nil: offline
		wantAction engine.Action
		wantWarn   string
	}{
		{"a member of a granting group", objectExemptionsOn, &engine.Requester{Username: "alice", Groups: []string{"system:authenticated", "platform"}}, engine.ActionExempt, ""},
		{"a granting ServiceAccount", objectExemptionsOn, &engine.Requester{Username: "system:serviceaccount:argocd:argocd-application-controller"}, engine.ActionExempt, ""},
		{"anyone else", objectExemptionsOn, &engine.Requester{Username: "bob", Groups: []string{"system:authenticated", "developers"}}, engine.ActionDeny,
			"annotation stateguard.io/exempt is ignored: bob may not exempt an object (only group platform, system:serviceaccount:argocd:argocd-application-controller may); the platform team grants exemptions in stateguard's policy"},
		{"offline, when grantors may set it", objectExemptionsOn, nil, engine.ActionExempt, ""},
		{"offline, when it is off", "", nil, engine.ActionDeny, "annotation stateguard.io/exempt is ignored: object exemptions are off"},
		{"on, with nobody to grant it", "allowObjectExemptions: true\n", &engine.Requester{Username: "alice", Groups: []string{"platform"}}, engine.ActionDeny,
			"annotation stateguard.io/exempt is ignored: nobody may exempt an object (objectExemptionGrantors is empty)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.requester != nil {
				ctx = engine.WithRequester(ctx, *tt.requester)
			}
			got, err := judgeStatefulSet(t, newEngine(t, tt.config), ctx, exempted, nil, index(shopNamespace(nil)))
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Results) != 1 || got.Results[0].Action != tt.wantAction {
				t.Fatalf("results %+v, want one at %s", got.Results, tt.wantAction)
			}
			warnings := strings.Join(got.Warnings, "\n")
			if (tt.wantWarn == "") != (warnings == "") || !strings.Contains(warnings, tt.wantWarn) {
				t.Errorf("warnings %q, want %q", warnings, tt.wantWarn)
			}
		})
	}
}

func TestTheDeploymentsExemptionCoversItsHPA(t *testing.T) {
	for _, tt := range []struct {
		name, config string
		annotated    bool
	}{
		{"annotation", objectExemptionsOn, true},
		{"policy", "exemptions: [{name: web, namespaces: [shop], names: [web], kinds: [Deployment], rules: [deployment-shared-rwo-pvc], reason: one node}]\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			web := deploy("web", ptr[int32](1), recreate, claimVolume("uploads"))
			if tt.annotated {
				web.Annotations = map[string]string{engine.AnnotationExempt: engine.RuleSharedRWOPVC}
			}
			got, err := newEngine(t, tt.config).HorizontalPodAutoscaler(context.Background(), hpa("web", "web", 5), nil, index(web, pvc("uploads", rwo)))
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Results) != 1 || got.Results[0].Action != engine.ActionExempt || got.Results[0].Kind != "HorizontalPodAutoscaler" || len(got.Warnings) > 0 {
				t.Errorf("verdict %+v, want the HPA's result exempt", got)
			}
		})
	}
}
