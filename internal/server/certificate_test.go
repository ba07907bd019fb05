package server

import (
	"context"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	cmfake "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/fake"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCertificateWatch(t *testing.T) {
	notAfter := time.Date(2027, 2, 21, 4, 0, 0, 0, time.UTC)
	certificate := func(status cmmeta.ConditionStatus) *cmapi.Certificate {
		return &cmapi.Certificate{
			ObjectMeta: metav1.ObjectMeta{Name: "sg-stateguard", Namespace: "stateguard-system"},
			Status: cmapi.CertificateStatus{
				NotAfter:   &metav1.Time{Time: notAfter},
				Conditions: []cmapi.CertificateCondition{{Type: cmapi.CertificateConditionReady, Status: status, Reason: "Issuing"}},
			},
		}
	}
	for _, tt := range []struct {
		name       string
		objects    []*cmapi.Certificate
		wantReady  bool
		wantExpiry float64
	}{
		{name: "Ready", objects: []*cmapi.Certificate{certificate(cmmeta.ConditionTrue)}, wantReady: true, wantExpiry: float64(notAfter.Unix())},
		{name: "not Ready", objects: []*cmapi.Certificate{certificate(cmmeta.ConditionFalse)}, wantExpiry: float64(notAfter.Unix())},
		{name: "missing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := cmfake.NewClientset()
			for _, c := range tt.objects {
				if err := client.Tracker().Add(c); err != nil {
					t.Fatal(err)
				}
			}
			w := newCertificateWatch(client, "stateguard-system", "sg-stateguard", prometheus.NewRegistry(), logr.Discard())
			if got := w.check(context.Background()); got != tt.wantReady {
				t.Errorf("ready = %v, want %v", got, tt.wantReady)
			}
			wantGauge := 0.0
			if tt.wantReady {
				wantGauge = 1
			}
			if got := testutil.ToFloat64(w.ready); got != wantGauge {
				t.Errorf("stateguard_certificate_ready = %v, want %v", got, wantGauge)
			}
			if got := testutil.ToFloat64(w.expiry); got != tt.wantExpiry {
				t.Errorf("stateguard_certificate_expiry_timestamp_seconds = %v, want %v", got, tt.wantExpiry)
			}
		})
	}
}
