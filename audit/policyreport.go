package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/go-logr/logr"
	polv1alpha2 "github.com/kyverno/kyverno/api/policyreport/v1alpha2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/report"
)

// ReportName is the name of stateguard's PolicyReport in each namespace.
const ReportName = "stateguard"

// labelManagedBy marks the PolicyReports stateguard owns.
const labelManagedBy = "app.kubernetes.io/managed-by"

// maxReportResults keeps a report well under the API server's object size
// limit (about 1.5 MiB); the summary still counts every result.
const maxReportResults = 1000

// Reports writes one wgpolicyk8s.io/v1alpha2 PolicyReport per namespace
// with results, and empties the reports of namespaces that have none left.
// Results are as Policy Reporter reads them: source and policy stateguard,
// rule the rule ID, one result per workload and rule.
type Reports struct {
	Client    client.Client // writes
	Reader    client.Reader // reads from the API server: reports are not cached
	Discovery discovery.DiscoveryInterface
	Log       logr.Logger
	// PassResults adds a pass result for each rule a workload complies
	// with, so that compliance views count it; off for clusters whose
	// reports would grow too large.
	PassResults bool

	crdMissingLogged bool
}

// reportsPageSize bounds the existing reports held at once, each of up to
// maxReportResults results: all of a large cluster's would be hundreds of
// MB.
const reportsPageSize = 10

// Write brings the reports in line with rep, writing only those that
// changed; enabled says which rules the policy judges (for pass results).
// It builds one namespace's report at a time, and reads the existing ones
// in pages, so that its memory does not grow with the cluster.
func (r *Reports) Write(ctx context.Context, rep *report.Report, judged map[string]judgedObject, enabled func(rule string) bool) error {
	installed, err := r.crdInstalled()
	if err != nil || !installed {
		return err
	}
	namespaces, want := r.wanted(rep, judged, enabled)
	var errs []error
	seen := map[string]bool{}
	for cont := ""; ; {
		var page polv1alpha2.PolicyReportList
		if err := r.Reader.List(ctx, &page, client.MatchingLabels{labelManagedBy: EventComponent}, client.Limit(reportsPageSize), client.Continue(cont)); err != nil {
			return errors.Join(append(errs, fmt.Errorf("listing PolicyReports: %w", err))...)
		}
		for i := range page.Items {
			have := &page.Items[i]
			if have.Name != ReportName {
				continue
			}
			seen[have.Namespace] = true
			// Fixed or deleted workloads: the report stays, empty.
			want := want(have.Namespace)
			if sameResults(have, want) {
				continue
			}
			have.Results, have.Summary = want.Results, want.Summary
			if err := r.Client.Update(ctx, have); err != nil {
				errs = append(errs, fmt.Errorf("updating PolicyReport %s/%s: %w", have.Namespace, have.Name, err))
			}
		}
		if cont = page.Continue; cont == "" {
			break
		}
	}
	for _, ns := range namespaces {
		if seen[ns] {
			continue
		}
		if want := want(ns); len(want.Results) > 0 {
			if err := r.Client.Create(ctx, want); err != nil {
				errs = append(errs, fmt.Errorf("creating PolicyReport %s/%s: %w", want.Namespace, want.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// wanted returns the namespaces that may have results, sorted, and what a
// namespace's report should hold, built when asked.
func (r *Reports) wanted(rep *report.Report, judged map[string]judgedObject, enabled func(rule string) bool) ([]string, func(namespace string) *polv1alpha2.PolicyReport) {
	now := metav1.Timestamp{Seconds: time.Now().Unix()}
	// The indexes of each namespace's results and judged workloads.
	results, subjects := map[string][]int{}, map[string][]int{}
	violated := map[string]bool{} // source and rule
	for i, e := range rep.Results {
		results[e.Namespace] = append(results[e.Namespace], i)
		violated[e.Source+" "+e.Rule] = true
	}
	if r.PassResults {
		for i, s := range rep.Judged {
			subjects[s.Namespace] = append(subjects[s.Namespace], i)
		}
	}
	namespaces := slices.Collect(maps.Keys(results))
	for ns := range subjects {
		if _, ok := results[ns]; !ok {
			namespaces = append(namespaces, ns)
		}
	}
	slices.Sort(namespaces)
	return namespaces, func(namespace string) *polv1alpha2.PolicyReport {
		polr := &polv1alpha2.PolicyReport{ObjectMeta: metav1.ObjectMeta{
			Name: ReportName, Namespace: namespace, Labels: map[string]string{labelManagedBy: EventComponent},
		}}
		for _, i := range results[namespace] {
			e := rep.Results[i]
			polr.Results = append(polr.Results, reportResult(e, judged[e.Source], now))
		}
		for _, i := range subjects[namespace] {
			s := rep.Judged[i]
			for _, rule := range engine.Rules {
				if slices.Contains(rule.Kinds, s.Kind) && enabled(rule.ID) && !violated[s.Source+" "+rule.ID] {
					polr.Results = append(polr.Results, passResult(rule, s, judged[s.Source], now))
				}
			}
		}
		finish(polr)
		return polr
	}
}

// crdInstalled asks discovery each pass, so a CRD installed later is used.
func (r *Reports) crdInstalled() (bool, error) {
	_, err := r.Discovery.ServerResourcesForGroupVersion(polv1alpha2.SchemeGroupVersion.String())
	switch {
	case apierrors.IsNotFound(err):
		if !r.crdMissingLogged {
			r.Log.Info("the wgpolicyk8s.io/v1alpha2 PolicyReport CRD is not installed: no PolicyReports are written")
			r.crdMissingLogged = true
		}
		return false, nil
	case err != nil:
		return false, fmt.Errorf("discovering %s: %w", polv1alpha2.SchemeGroupVersion, err)
	}
	r.crdMissingLogged = false
	return true, nil
}

// reportResult maps a result to the PolicyReport vocabulary: deny is fail,
// warn is warn, exempt is skip, and a dryrun result is what it would be once
// enforced.
func reportResult(e report.Entry, obj judgedObject, now metav1.Timestamp) polv1alpha2.PolicyReportResult {
	action := e.Action
	if action == engine.ActionDryRun {
		action = e.Intended
	}
	res := polv1alpha2.PolicyReportResult{
		Source: EventComponent, Policy: ReportPolicy, Rule: e.Rule, Category: reportCategory,
		Message:    e.Field + ": " + e.Message,
		Properties: map[string]string{"action": string(e.Action), "field": e.Field},
		Timestamp:  now,
	}
	switch action {
	case engine.ActionDeny:
		res.Result, res.Severity, res.Scored = polv1alpha2.StatusFail, polv1alpha2.SeverityHigh, true
	case engine.ActionExempt:
		res.Result, res.Severity = polv1alpha2.StatusSkip, polv1alpha2.SeverityInfo
		res.Properties["exemption"] = e.Exemption
	default:
		res.Result, res.Severity = polv1alpha2.StatusWarn, polv1alpha2.SeverityMedium
	}
	res.Resources = resourceOf(e.Kind, obj)
	return res
}

// ReportPolicy is the policy of every result: stateguard's rules are the
// rules of one policy, as Policy Reporter groups them.
const ReportPolicy = "stateguard"

const reportCategory = "Stateful workloads"

// passResult says a workload complies with a rule.
func passResult(rule engine.Rule, s report.Subject, obj judgedObject, now metav1.Timestamp) polv1alpha2.PolicyReportResult {
	return polv1alpha2.PolicyReportResult{
		Source: EventComponent, Policy: ReportPolicy, Rule: rule.ID, Category: reportCategory,
		Result: polv1alpha2.StatusPass, Severity: polv1alpha2.SeverityInfo, Scored: true,
		Message:   "compliant: " + rule.Summary,
		Resources: resourceOf(s.Kind, obj),
		Timestamp: now,
	}
}

func resourceOf(kind string, obj judgedObject) []corev1.ObjectReference {
	if obj == (judgedObject{}) { // not among the judged
		return nil
	}
	return []corev1.ObjectReference{{
		APIVersion: judgedKinds[kind].apiVersion, Kind: kind,
		Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID(),
	}}
}

// statusOrder ranks results for the size limit: violations are kept
// before passes.
var statusOrder = map[polv1alpha2.PolicyResult]int{
	polv1alpha2.StatusFail: 0, polv1alpha2.StatusError: 1, polv1alpha2.StatusWarn: 2, polv1alpha2.StatusSkip: 3, polv1alpha2.StatusPass: 4,
}

// finish sorts the results, counts them and trims them to the size limit.
func finish(polr *polv1alpha2.PolicyReport) {
	slices.SortStableFunc(polr.Results, func(a, b polv1alpha2.PolicyReportResult) int {
		return cmp.Or(cmp.Compare(statusOrder[a.Result], statusOrder[b.Result]),
			cmp.Compare(resourceKey(a), resourceKey(b)), cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Message, b.Message))
	})
	polr.Summary = polv1alpha2.PolicyReportSummary{}
	for _, res := range polr.Results {
		switch res.Result {
		case polv1alpha2.StatusFail:
			polr.Summary.Fail++
		case polv1alpha2.StatusWarn:
			polr.Summary.Warn++
		case polv1alpha2.StatusSkip:
			polr.Summary.Skip++
		case polv1alpha2.StatusPass:
			polr.Summary.Pass++
		}
	}
	if len(polr.Results) > maxReportResults {
		polr.Results = polr.Results[:maxReportResults]
	}
}

func resourceKey(res polv1alpha2.PolicyReportResult) string {
	if len(res.Resources) == 0 {
		return ""
	}
	return res.Resources[0].Kind + "/" + res.Resources[0].Name
}

// sameResults compares reports without the results' timestamps, so an
// unchanged report is not rewritten every pass.
func sameResults(have, want *polv1alpha2.PolicyReport) bool {
	if len(have.Results) != len(want.Results) || have.Summary != want.Summary {
		return false
	}
	for i := range have.Results {
		a, b := have.Results[i], want.Results[i]
		a.Timestamp, b.Timestamp = metav1.Timestamp{}, metav1.Timestamp{}
		if !equality.Semantic.DeepEqual(a, b) {
			return false
		}
	}
	return true
}
