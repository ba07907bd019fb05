package server

import (
	"context"
	"os"
	"path/filepath"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// certificateWatch reports the cert-manager Certificate stateguard serves:
// whether it is Ready and when it expires. It does not gate readiness: a
// Certificate that fails to renew still has a valid certificate until
// notAfter, and an unready webhook with failurePolicy Fail blocks writes
// cluster-wide. The metrics and the log are what alerting should watch.
type certificateWatch struct {
	client    cmclient.Interface
	namespace string
	name      string
	ready     prometheus.Gauge
	expiry    prometheus.Gauge
	log       logr.Logger
	every     time.Duration
}

func newCertificateWatch(client cmclient.Interface, namespace, name string, reg prometheus.Registerer, log logr.Logger) *certificateWatch {
	w := &certificateWatch{
		client: client, namespace: namespace, name: name, log: log, every: time.Minute,
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stateguard_certificate_ready",
			Help: "1 when the cert-manager Certificate stateguard serves is Ready, else 0.",
		}),
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "stateguard_certificate_expiry_timestamp_seconds",
			Help: "When the cert-manager Certificate stateguard serves expires (status.notAfter), in Unix seconds.",
		}),
	}
	reg.MustRegister(w.ready, w.expiry)
	return w
}

// Start checks the Certificate now and every minute until ctx ends.
func (w *certificateWatch) Start(ctx context.Context) error {
	wasReady := true
	for {
		ready := w.check(ctx)
		if ready != wasReady {
			if ready {
				w.log.Info("the Certificate is Ready", "certificate", w.namespace+"/"+w.name)
			}
			wasReady = ready
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(w.every):
		}
	}
}

func (*certificateWatch) NeedLeaderElection() bool { return false }

// check reads the Certificate, sets the metrics and reports whether it is Ready.
func (w *certificateWatch) check(ctx context.Context) bool {
	crt, err := w.client.CertmanagerV1().Certificates(w.namespace).Get(ctx, w.name, metav1.GetOptions{})
	if err != nil {
		w.ready.Set(0)
		w.log.Error(err, "reading the Certificate", "certificate", w.namespace+"/"+w.name)
		return false
	}
	if crt.Status.NotAfter != nil {
		w.expiry.Set(float64(crt.Status.NotAfter.Unix()))
	}
	for _, c := range crt.Status.Conditions {
		if c.Type == cmapi.CertificateConditionReady {
			if c.Status == cmmeta.ConditionTrue {
				w.ready.Set(1)
				return true
			}
			w.ready.Set(0)
			w.log.Info("the Certificate is not Ready", "certificate", w.namespace+"/"+w.name, "reason", c.Reason, "message", c.Message)
			return false
		}
	}
	w.ready.Set(0)
	w.log.Info("the Certificate is not Ready yet", "certificate", w.namespace+"/"+w.name)
	return false
}

// servingCertificateExpiry reports when the certificate the webhook serves
// expires, read from the certificate directory at each scrape: the same in
// both TLS modes, and what the API server actually sees. 0 while there is
// none to read.
func servingCertificateExpiry(certDir string) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "stateguard_serving_certificate_expiry_timestamp_seconds",
		Help: "When the serving certificate in the certificate directory (tls.crt) expires, in Unix seconds; 0 while there is none.",
	}, func() float64 {
		data, err := os.ReadFile(filepath.Join(certDir, corev1.TLSCertKey))
		if err != nil {
			return 0
		}
		certs, err := parseCertificates(data)
		if err != nil || len(certs) == 0 {
			return 0
		}
		return float64(certs[0].NotAfter.Unix())
	})
}
