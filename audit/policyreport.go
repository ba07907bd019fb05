package audit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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
type Reports struct {
	Client    client.Client // writes
	Reader    client.Reader // reads from the API server: reports are not cached
	Discovery discovery.DiscoveryInterface
	Log       logr.Logger

	crdMissingLogged bool
}

// Write brings the reports in line with rep, writing only those that changed.
func (r *Reports) Write(ctx context.Context, rep *report.Report, judged map[string]metav1.Object) error {
	installed, err := r.crdInstalled()
	if err != nil || !installed {
		return err
	}
	var existing polv1alpha2.PolicyReportList
	if err := r.Reader.List(ctx, &existing, client.MatchingLabels{labelManagedBy: EventComponent}); err != nil {
		return fmt.Errorf("listing PolicyReports: %w", err)
	}
	wanted := map[string]*polv1alpha2.PolicyReport{}
	now := metav1.Timestamp{Seconds: time.Now().Unix()}
	for _, e := range rep.Results {
		polr := wanted[e.Namespace]
		if polr == nil {
			polr = &polv1alpha2.PolicyReport{ObjectMeta: metav1.ObjectMeta{
				Name: ReportName, Namespace: e.Namespace, Labels: map[string]string{labelManagedBy: EventComponent},
			}}
			wanted[e.Namespace] = polr
		}
		polr.Results = append(polr.Results, reportResult(e, judged[e.Source], now))
	}
	var errs []error
	for i := range existing.Items {
		have := &existing.Items[i]
		if have.Name != ReportName {
			continue
		}
		want := wanted[have.Namespace]
		delete(wanted, have.Namespace)
		if want == nil {
			// Fixed or deleted workloads: the report stays, empty.
			want = &polv1alpha2.PolicyReport{}
		}
		finish(want)
		if sameResults(have, want) {
			continue
		}
		have.Results, have.Summary = want.Results, want.Summary
		if err := r.Client.Update(ctx, have); err != nil {
			errs = append(errs, fmt.Errorf("updating PolicyReport %s/%s: %w", have.Namespace, have.Name, err))
		}
	}
	for _, want := range wanted {
		finish(want)
		if err := r.Client.Create(ctx, want); err != nil {
			errs = append(errs, fmt.Errorf("creating PolicyReport %s/%s: %w", want.Namespace, want.Name, err))
		}
	}
	return errors.Join(errs...)
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
func reportResult(e report.Entry, obj metav1.Object, now metav1.Timestamp) polv1alpha2.PolicyReportResult {
	action := e.Action
	if action == engine.ActionDryRun {
		action = e.Intended
	}
	res := polv1alpha2.PolicyReportResult{
		Source: EventComponent, Policy: e.Rule, Category: "Stateful workloads",
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
	if obj != nil {
		res.Resources = []corev1.ObjectReference{{
			APIVersion: judgedKinds[e.Kind].apiVersion, Kind: e.Kind,
			Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID(),
		}}
	}
	return res
}

// finish sorts the results, counts them and trims them to the size limit.
func finish(polr *polv1alpha2.PolicyReport) {
	slices.SortStableFunc(polr.Results, func(a, b polv1alpha2.PolicyReportResult) int {
		return cmp.Or(cmp.Compare(resourceKey(a), resourceKey(b)), cmp.Compare(a.Policy, b.Policy), cmp.Compare(a.Message, b.Message))
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
