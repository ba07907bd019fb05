package audit

import (
	"context"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// ledgerKey holds the digests, one per line, in the ledger's ConfigMap.
const ledgerKey = "violations"

// maxLedgerDigests keeps the ConfigMap under the API server's 1 MiB limit
// (17 bytes a digest); violations beyond it may get a second Event after a
// restart, once their first one has expired.
const maxLedgerDigests = 60000

// Ledger remembers, in a ConfigMap, which violations have had their Event.
// The Events cannot: the API server drops them after its --event-ttl (an
// hour by default), and "once per violation" has to outlive both them and
// the server's restarts.
type Ledger struct {
	ConfigMaps      corev1client.ConfigMapsGetter
	Namespace, Name string

	stored *corev1.ConfigMap // as last read or written; nil when absent
}

// Load reads the digests of the violations that have had their Event.
func (l *Ledger) Load(ctx context.Context) (map[string]bool, error) {
	cm, err := l.ConfigMaps.ConfigMaps(l.Namespace).Get(ctx, l.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		l.stored = nil
		return map[string]bool{}, nil
	case err != nil:
		return nil, err
	}
	l.stored = cm
	digests := map[string]bool{}
	for _, d := range strings.Fields(cm.Data[ledgerKey]) {
		digests[d] = true
	}
	return digests, nil
}

// Save records digests, writing only when they changed. After a failed
// write it reads the ConfigMap again, so that the next Save starts from
// what is stored.
func (l *Ledger) Save(ctx context.Context, digests map[string]bool) error {
	sorted := slices.Sorted(maps.Keys(digests))
	if len(sorted) > maxLedgerDigests {
		sorted = sorted[:maxLedgerDigests]
	}
	value := strings.Join(sorted, "\n")
	configMaps := l.ConfigMaps.ConfigMaps(l.Namespace)
	var cm *corev1.ConfigMap
	var err error
	switch {
	case l.stored == nil:
		cm, err = configMaps.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: l.Name, Namespace: l.Namespace, Labels: map[string]string{labelManagedBy: EventComponent}},
			Data:       map[string]string{ledgerKey: value},
		}, metav1.CreateOptions{})
	case l.stored.Data[ledgerKey] == value:
		return nil
	default:
		update := l.stored.DeepCopy()
		update.Data = map[string]string{ledgerKey: value}
		cm, err = configMaps.Update(ctx, update, metav1.UpdateOptions{})
	}
	if err != nil {
		if _, loadErr := l.Load(ctx); loadErr != nil {
			l.stored = nil
		}
		return err
	}
	l.stored = cm
	return nil
}
