package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/lookup"
	"github.com/stateguard/stateguard/report"
)

// Event reason and source of the Events the background audit records.
const (
	EventReason    = "PolicyViolation"
	EventComponent = "stateguard"
)

// Background audits the cluster every Interval, while its replica leads
// (the server starts it for each term). Each pass lists the workloads
// from the API server in pages and looks up in the server's store, as
// `stateguard audit` does: the server keeps no workload, so its memory
// follows the objects the rules look up, not the cluster's workloads.
// Each pass sets the metrics, records a Warning Event once per distinct
// violation and, when the CRD is installed, writes one PolicyReport per
// namespace.
type Background struct {
	Store     *lookup.Store        // the server's
	Workloads kubernetes.Interface // lists the StatefulSets and Deployments
	// Synced reports whether the store holds every kind; no pass runs
	// before. A pass over a partial store would report StatefulSets whose
	// Service has not arrived yet, and forget violations it cannot see.
	Synced   func() bool
	Engine   func() *engine.Engine
	Interval time.Duration
	Excluded []string
	Events   corev1client.EventsGetter
	Ledger   *Ledger
	Reports  *Reports // nil when PolicyReports are not written
	Metrics  *Metrics
	Log      logr.Logger

	// emitted holds the digests of the current violations that have had
	// their Event, as the Ledger stores them.
	emitted map[string]bool
}

// Start runs a pass at once, then every Interval, until ctx ends.
func (b *Background) Start(ctx context.Context) error {
	b.Log.Info("background audit starting", "interval", b.Interval)
	emitted, err := b.Ledger.Load(ctx)
	if err != nil {
		// Creates of Events that still exist are refused as existing:
		// only violations whose Event has expired are recorded again.
		b.Log.Error(err, "reading which violations have had their Event", "configmap", b.Ledger.Namespace+"/"+b.Ledger.Name)
		emitted = map[string]bool{}
	}
	b.emitted = emitted
	for !b.Synced() {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
	t := time.NewTicker(b.Interval)
	defer t.Stop()
	for {
		if err := b.Pass(ctx); err != nil && ctx.Err() == nil {
			b.Log.Error(err, "audit pass failed")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Pass audits once.
func (b *Background) Pass(ctx context.Context) error {
	start := time.Now()
	eng := b.Engine() // one policy for the whole pass, even across a reload
	workloads := listedWorkloads(ctx, b.Workloads, backgroundWorkloadPageSize, &counter{})
	rep, _, judged, err := judge(ctx, eng, b.Store, Scope{Excluded: b.Excluded}, workloads, true)
	if err != nil {
		return err
	}
	b.Metrics.observe(rep)
	events := b.recordEvents(ctx, rep, judged)
	if err := b.Ledger.Save(ctx, b.emitted); err != nil {
		b.Log.Error(err, "recording which violations have had their Event", "configmap", b.Ledger.Namespace+"/"+b.Ledger.Name)
	}
	var reportErr error
	if b.Reports != nil {
		reportErr = b.Reports.Write(ctx, rep, judged, eng.Enabled)
	}
	elapsed := time.Since(start)
	b.Metrics.LastRun.SetToCurrentTime()
	b.Metrics.Duration.Set(elapsed.Seconds())
	b.Log.Info("audit pass", "workloads", rep.Objects, "results", len(rep.Results), "newEvents", events, "duration", elapsed.Round(time.Millisecond).String())
	return reportErr
}

// recordEvents records a Warning Event on the object of each violation
// not recorded yet (exemptions are not violations) and forgets the
// violations that are gone. It returns how many Events it created.
func (b *Background) recordEvents(ctx context.Context, rep *report.Report, judged map[string]judgedObject) int {
	current := map[string]bool{}
	created, failed := 0, 0
	var firstErr error
	for _, r := range rep.Results {
		if r.Action == engine.ActionExempt {
			continue
		}
		obj := judged[r.Source]
		digest := violationDigest(obj, r)
		current[digest] = true
		if b.emitted[digest] {
			continue
		}
		ev := violationEvent(eventName(obj, digest), obj, r)
		_, err := b.Events.Events(obj.GetNamespace()).Create(ctx, ev, metav1.CreateOptions{})
		switch {
		case err == nil:
			created++
		case apierrors.IsAlreadyExists(err):
		default:
			// Retried next pass. One line per pass, not per Event: a
			// missing permission would otherwise flood the log.
			if failed == 0 {
				firstErr = err
			}
			failed++
			continue
		}
		b.emitted[digest] = true
	}
	if failed > 0 {
		b.Log.Error(firstErr, "recording Events failed; retrying next pass", "failed", failed)
	}
	for digest := range b.emitted {
		if !current[digest] {
			delete(b.emitted, digest)
		}
	}
	return created
}

// violationDigest identifies a violation: the same violation always has
// the same digest, a new one a new digest. The action is left out: moving
// from dryrun to deny changes no violation, and should not record every
// one of them again.
func violationDigest(obj judgedObject, r report.Entry) string {
	sum := sha256.Sum256([]byte(string(obj.GetUID()) + "\x00" + r.Rule + "\x00" + r.Field + "\x00" + r.Message))
	return hex.EncodeToString(sum[:8])
}

// eventName is the object's name and the violation's digest.
func eventName(obj judgedObject, digest string) string {
	name := obj.GetName()
	if max := 253 - 1 - len(digest); len(name) > max {
		name = strings.TrimRight(name[:max], "-.")
	}
	return name + "." + digest
}

func violationEvent(name string, obj judgedObject, r report.Entry) *corev1.Event {
	now := metav1.Now()
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: obj.GetNamespace()},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: judgedKinds[r.Kind].apiVersion, Kind: r.Kind,
			Namespace: obj.GetNamespace(), Name: obj.GetName(), UID: obj.GetUID(),
		},
		Reason:         EventReason,
		Type:           corev1.EventTypeWarning,
		Message:        fmt.Sprintf("%s (%s): %s: %s", r.Rule, r.Action, r.Field, r.Message),
		Source:         corev1.EventSource{Component: EventComponent},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
	}
}
