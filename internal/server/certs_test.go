package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

// rotation drives a certRotator on a fake API and a fake clock, and checks
// after every step that the API server never distrusts what a replica may
// serve: a serving certificate replaces another only once its CA has been
// in every bundle for settle, and a CA leaves the bundles only once the
// certificates it signed have been replaced for settle.
type rotation struct {
	t       *testing.T
	r       *certRotator
	api     *fake.Clientset
	now     time.Time
	trusted map[string]time.Time // a CA's Raw: when every bundle held it
	served  []servedCert         // the serving certificates, in order
}

type servedCert struct {
	cert            *x509.Certificate
	since, replaced time.Time
}

func newRotation(t *testing.T, mutating string) *rotation {
	t.Helper()
	api := fake.NewClientset(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "sg", Name: "sg-tls"}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "sg"}, Webhooks: []admissionregistrationv1.ValidatingWebhook{
			{Name: "a.validate"}, {Name: "b.validate"},
		}},
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "sg"}, Webhooks: []admissionregistrationv1.MutatingWebhook{
			{Name: "a.default"},
		}},
	)
	rt := &rotation{t: t, api: api, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), trusted: map[string]time.Time{}}
	rt.r = &certRotator{
		CertRotation: CertRotation{Namespace: "sg", Secret: "sg-tls", Service: "sg", ValidatingWebhookConfiguration: "sg", MutatingWebhookConfiguration: mutating},
		clientset:    api, log: logr.Discard(), now: func() time.Time { return rt.now }, settle: certSettle,
	}
	rt.r.changed = rt.now
	return rt
}

// untilSteady passes until the rotator waits its hourly check, advancing
// the clock by every wait it asks for, and returns the time that took.
func (rt *rotation) untilSteady() time.Duration {
	rt.t.Helper()
	start := rt.now
	for steps := 0; ; steps++ {
		if steps > 20 {
			rt.t.Fatal("no steady state after 20 steps")
		}
		next, err := rt.r.reconcile(context.Background())
		if err != nil {
			rt.t.Fatal(err)
		}
		rt.check()
		if next == certCheckEvery {
			return rt.now.Sub(start)
		}
		rt.now = rt.now.Add(next)
	}
}

func (rt *rotation) secret() *corev1.Secret {
	s, err := rt.api.CoreV1().Secrets("sg").Get(context.Background(), "sg-tls", metav1.GetOptions{})
	if err != nil {
		rt.t.Fatal(err)
	}
	return s
}

// bundles are every webhook's caBundle.
func (rt *rotation) bundles() [][]byte {
	ctx := context.Background()
	v, err := rt.api.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "sg", metav1.GetOptions{})
	if err != nil {
		rt.t.Fatal(err)
	}
	var bundles [][]byte
	for _, w := range v.Webhooks {
		bundles = append(bundles, w.ClientConfig.CABundle)
	}
	if rt.r.MutatingWebhookConfiguration != "" {
		m, err := rt.api.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "sg", metav1.GetOptions{})
		if err != nil {
			rt.t.Fatal(err)
		}
		for _, w := range m.Webhooks {
			bundles = append(bundles, w.ClientConfig.CABundle)
		}
	}
	return bundles
}

// trustedByAll is the CAs every bundle holds.
func (rt *rotation) trustedByAll() map[string]*x509.Certificate {
	var all map[string]*x509.Certificate
	for _, b := range rt.bundles() {
		certs, _ := parseCertificates(b)
		in := map[string]*x509.Certificate{}
		for _, c := range certs {
			if all == nil || all[string(c.Raw)] != nil {
				in[string(c.Raw)] = c
			}
		}
		all = in
	}
	return all
}

func (rt *rotation) check() {
	rt.t.Helper()
	trusted := rt.trustedByAll()
	for raw := range rt.trusted {
		if trusted[raw] == nil {
			delete(rt.trusted, raw)
		}
	}
	for raw := range trusted {
		if _, ok := rt.trusted[raw]; !ok {
			rt.trusted[raw] = rt.now
		}
	}
	// A CA leaves only once what it signed has been replaced for settle.
	for _, s := range rt.served {
		if signedByAny(s.cert, trusted) {
			continue
		}
		if s.replaced.IsZero() || rt.now.Sub(s.replaced) < certSettle {
			rt.t.Fatalf("at +%s the API server distrusts the serving certificate %v, replaced at %v", rt.now.Sub(rt.served[0].since), s.cert.SerialNumber, s.replaced)
		}
	}
	data := rt.secret().Data[corev1.TLSCertKey]
	if len(data) == 0 {
		return
	}
	certs, err := parseCertificates(data)
	if err != nil {
		rt.t.Fatal(err)
	}
	if n := len(rt.served); n > 0 && rt.served[n-1].cert.Equal(certs[0]) {
		return
	}
	// A new serving certificate: its CA trusted for settle, unless nothing
	// was served before.
	for raw, since := range rt.trusted {
		if certs[0].CheckSignatureFrom(trusted[raw]) == nil && (len(rt.served) == 0 || rt.now.Sub(since) >= certSettle) {
			if n := len(rt.served); n > 0 {
				rt.served[n-1].replaced = rt.now
			}
			rt.served = append(rt.served, servedCert{cert: certs[0], since: rt.now})
			return
		}
	}
	rt.t.Fatalf("a serving certificate issued by %q before every bundle trusted its CA for %s", certs[0].Issuer, certSettle)
}

func signedByAny(c *x509.Certificate, cas map[string]*x509.Certificate) bool {
	for _, ca := range cas {
		if c.CheckSignatureFrom(ca) == nil {
			return true
		}
	}
	return false
}

func TestCertRotatorIssuesAtOnceOnAFreshInstall(t *testing.T) {
	rt := newRotation(t, "sg")
	if took := rt.untilSteady(); took != 0 {
		t.Errorf("a fresh install waited %s for its first certificate", took)
	}
	s := rt.secret()
	ca, err := parseKeyPair(s.Data[caCertKey], s.Data[caKeyKey])
	if err != nil {
		t.Fatal(err)
	}
	serving, err := parseKeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		t.Fatal(err)
	}
	if err := servingCertFits(serving, ca, []string{"sg.sg.svc", "sg.sg.svc.cluster.local"}, rt.now); err != nil {
		t.Error(err)
	}
	for _, b := range rt.bundles() {
		if !bytes.Equal(b, ca.certPEM) {
			t.Errorf("a webhook trusts %q, want the CA alone", b)
		}
	}
}

func TestCertRotatorRotatesTheCAWithoutAGap(t *testing.T) {
	rt := newRotation(t, "sg")
	rt.untilSteady()
	first := rt.secret().Data[caCertKey]

	// Forced: the CA's key removed.
	s := rt.secret()
	delete(s.Data, caKeyKey)
	if _, err := rt.api.CoreV1().Secrets("sg").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	took := rt.untilSteady()
	if bytes.Equal(rt.secret().Data[caCertKey], first) || len(rt.served) != 2 {
		t.Fatalf("the CA was not rotated: %d serving certificates", len(rt.served))
	}
	if took < 2*certSettle || took > 3*certSettle {
		t.Errorf("the rotation took %s, want two to three settle periods", took)
	}

	// Due: a year on, the serving certificate is renewed from the same CA,
	// at once; ten years on, the CA.
	rt.now = rt.served[1].cert.NotAfter.Add(-servingRenewBefore + time.Minute)
	if took := rt.untilSteady(); took != 0 || len(rt.served) != 3 {
		t.Errorf("renewal of the serving certificate: %d served, took %s", len(rt.served), took)
	}
	ca, _ := parseCertificates(rt.secret().Data[caCertKey])
	rt.now = ca[0].NotAfter.Add(-caRenewBefore + time.Minute)
	rt.r.changed = rt.now
	rt.untilSteady()
	if after, _ := parseCertificates(rt.secret().Data[caCertKey]); len(after) != 1 || after[0].Equal(ca[0]) {
		t.Errorf("the CA due for renewal was not replaced")
	}
}

func TestCertRotatorKeepsTrustingWhatRunsWhenTheSecretIsRecreated(t *testing.T) {
	rt := newRotation(t, "sg")
	rt.untilSteady()
	// `helm upgrade` recreates a deleted Secret empty; the replicas still
	// serve the old certificate from their files.
	s := rt.secret()
	s.Data = nil
	if _, err := rt.api.CoreV1().Secrets("sg").Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	next, err := rt.r.reconcile(context.Background())
	if err != nil || next != 0 {
		t.Fatalf("first step: %v, %v", next, err)
	}
	cas, _ := parseCertificates(rt.secret().Data[caCertKey])
	if len(cas) != 2 || !signedByAny(rt.served[0].cert, map[string]*x509.Certificate{"": cas[1]}) {
		t.Fatalf("the new bundle holds %d CAs, want the new one and the one the replicas' certificate chains to", len(cas))
	}
	rt.untilSteady()
}

func TestCertRotatorInjectsIntoARecreatedConfiguration(t *testing.T) {
	rt := newRotation(t, "")
	rt.untilSteady()
	ctx := context.Background()
	m, _ := rt.api.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "sg", metav1.GetOptions{})
	if len(m.Webhooks[0].ClientConfig.CABundle) != 0 {
		t.Error("the CA was injected into a mutating configuration stateguard was not given")
	}
	// Deleted and created again by helm upgrade, without a bundle.
	v, _ := rt.api.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "sg", metav1.GetOptions{})
	for i := range v.Webhooks {
		v.Webhooks[i].ClientConfig.CABundle = nil
	}
	if _, err := rt.api.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, v, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rt.untilSteady()
	for _, b := range rt.bundles() {
		if !bytes.Equal(b, rt.secret().Data[caCertKey]) {
			t.Errorf("a webhook trusts %q after the configuration was recreated", b)
		}
	}
}

func TestCertRotatorNamesTheMissingSecret(t *testing.T) {
	rt := newRotation(t, "sg")
	if err := rt.api.CoreV1().Secrets("sg").Delete(context.Background(), "sg-tls", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := rt.r.reconcile(context.Background())
	if err == nil || !strings.Contains(err.Error(), "sg/sg-tls is gone (`helm upgrade`") {
		t.Errorf("err = %v", err)
	}
}

// TestCertRotatorTakesAnotherReplicasWriteQuietly: two replicas starting
// together race to write the Secret; the one that loses reads the winner's
// write and goes on without logging an error.
func TestCertRotatorTakesAnotherReplicasWriteQuietly(t *testing.T) {
	rt := newRotation(t, "sg")
	lost := false
	rt.api.PrependReactor("update", "secrets", func(clienttesting.Action) (bool, runtime.Object, error) {
		if lost {
			return false, nil, nil
		}
		lost = true
		return true, nil, apierrors.NewConflict(corev1.Resource("secrets"), "sg-tls", errors.New("the object has been modified"))
	})
	var errorsLogged []string
	rt.r.log = funcr.New(func(_, args string) {
		if strings.Contains(args, `"error"=`) {
			errorsLogged = append(errorsLogged, args)
		}
	}, funcr.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- rt.r.Start(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(rt.secret().Data[corev1.TLSCertKey]) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !lost || len(rt.secret().Data[corev1.TLSCertKey]) == 0 {
		t.Fatalf("conflict returned: %v; certificate written after it: %v", lost, len(rt.secret().Data[corev1.TLSCertKey]) > 0)
	}
	if len(errorsLogged) > 0 {
		t.Errorf("a lost race was logged as an error: %q", errorsLogged)
	}
}

// TestServingCertificateExpiry reads the certificate being served, in
// either TLS mode: 0 until there is one, then its notAfter.
func TestServingCertificateExpiry(t *testing.T) {
	dir := t.TempDir()
	gauge := servingCertificateExpiry(dir)
	if got := testutil.ToFloat64(gauge); got != 0 {
		t.Errorf("without a certificate: %v, want 0", got)
	}
	now := time.Now()
	ca, err := newCA(now)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := newServingCert(ca, []string{"sg.sg.svc"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, corev1.TLSCertKey), serving.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := testutil.ToFloat64(gauge), float64(serving.cert.NotAfter.Unix()); got != want {
		t.Errorf("expiry %v, want the serving certificate's notAfter %v", got, want)
	}
}
