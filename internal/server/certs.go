package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// CertRotation names what self-managed TLS keeps up to date.
type CertRotation struct {
	Namespace string // of the Secret and the Service
	Secret    string // holds ca.crt, ca.key, tls.crt and tls.key
	Service   string // the webhook Service the certificate is for
	// The webhook configurations that trust the CA. The mutating one is
	// registered only when the policy sets a default: "" when it is not.
	ValidatingWebhookConfiguration, MutatingWebhookConfiguration string
}

func (c CertRotation) validate() error {
	if c.Namespace == "" || c.Secret == "" || c.Service == "" || c.ValidatingWebhookConfiguration == "" {
		return fmt.Errorf("self-managed TLS needs the namespace, the Secret, the Service and the validating webhook configuration names (got %+v)", c)
	}
	return nil
}

func (c CertRotation) dnsNames() []string {
	dns := fmt.Sprintf("%s.%s.svc", c.Service, c.Namespace)
	return []string{dns, dns + ".cluster.local"}
}

// The Secret's keys: ca.crt is the bundle the webhook configurations
// trust, the current CA first; ca.key is the current CA's key.
const (
	caCertKey = "ca.crt"
	caKeyKey  = "ca.key"
)

// certRotator keeps the Secret's CA and serving certificate valid and the
// webhook configurations trusting them, without a moment in which the API
// server distrusts the certificate a replica serves. A new CA is trusted
// beside the previous ones before any replica serves a certificate it
// signed, and the previous ones are dropped only once every replica has
// had time to load the new certificate:
//
//  1. the CA is missing, invalid or due for renewal: a new CA, added in
//     front of the CAs trusted so far;
//  2. the webhook configurations' caBundle is set to ca.crt;
//  3. the serving certificate is missing, invalid, signed by another CA or
//     due for renewal: a new one, once the API server has had settle to
//     see the bundle;
//  4. ca.crt holds more than the current CA: the others are dropped, once
//     the replicas have had settle to serve the new certificate.
//
// It runs on the leader, one step per pass, and passes again at once after
// a step, on every change of the Secret or the configurations, and hourly.
// A new leader waits settle before a step that needs it: it cannot know
// when its predecessor took the last one.
type certRotator struct {
	CertRotation
	clientset kubernetes.Interface
	log       logr.Logger
	now       func() time.Time
	// settle covers the API server seeing a new caBundle (its informer)
	// and every replica serving a new certificate (the Secret's watch, then
	// controller-runtime's certificate watcher, which polls every 10 s).
	settle time.Duration
	// changed is when this rotator last wrote the Secret or a bundle.
	changed time.Time
}

const (
	certSettle     = 20 * time.Second
	certCheckEvery = time.Hour
	certRetry      = 10 * time.Second
	// certConflictRetry paces the reads after another replica's write.
	certConflictRetry = 500 * time.Millisecond
)

func (*certRotator) NeedLeaderElection() bool { return false }

// Start rotates until ctx ends.
func (r *certRotator) Start(ctx context.Context) error {
	r.changed = r.now()
	changes := make(chan struct{}, 1)
	r.watch(ctx, changes)
	for {
		next, err := r.reconcile(ctx)
		switch {
		case apierrors.IsConflict(err):
			// Another replica wrote first (every fresh start of two
			// replicas races so): read what it wrote and go on.
			r.log.V(1).Info("another replica updated the certificate first; reading it again", "reason", err.Error())
			next = certConflictRetry
		case err != nil:
			r.log.Error(err, "rotating the self-managed certificate; retrying", "secret", r.Namespace+"/"+r.Secret, "in", certRetry)
			next = certRetry
		}
		if next == 0 {
			continue
		}
		timer := time.NewTimer(next)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-changes:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// reconcile takes the first step due and says when to pass again: 0 for
// at once.
func (r *certRotator) reconcile(ctx context.Context) (time.Duration, error) {
	secrets := r.clientset.CoreV1().Secrets(r.Namespace)
	secret, err := secrets.Get(ctx, r.Secret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return 0, fmt.Errorf("the Secret %s/%s is gone (`helm upgrade` of the release recreates it): %w", r.Namespace, r.Secret, err)
	}
	if err != nil {
		return 0, err
	}
	if secret.Data == nil {
		secret.Data = map[string][]byte{}
	}
	now := r.now()
	write := func(what string, keysAndValues ...any) (time.Duration, error) {
		if _, err := secrets.Update(ctx, secret, metav1.UpdateOptions{FieldManager: "stateguard"}); err != nil {
			return 0, fmt.Errorf("writing %s into the Secret %s/%s: %w", what, r.Namespace, r.Secret, err)
		}
		r.changed = now
		r.log.Info("wrote "+what, append([]any{"secret", r.Namespace + "/" + r.Secret}, keysAndValues...)...)
		return 0, nil
	}

	// 1. The CA.
	ca, err := parseKeyPair(secret.Data[caCertKey], secret.Data[caKeyKey])
	if err == nil && !usableUntil(ca.cert, now, caRenewBefore) {
		err = fmt.Errorf("valid until %s: due for renewal", ca.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if err != nil {
		previous, perr := r.trustedCAs(ctx, secret.Data[caCertKey], now)
		if perr != nil {
			return 0, perr
		}
		next, cerr := newCA(now)
		if cerr != nil {
			return 0, cerr
		}
		secret.Data[caCertKey] = encodeCertificates(append([]*x509.Certificate{next.cert}, previous...))
		secret.Data[caKeyKey] = next.keyPEM
		return write("a new CA", "reason", err.Error(), "stillTrusted", len(previous))
	}

	// 2. The webhook configurations trust ca.crt.
	bundle := secret.Data[caCertKey]
	if injected, err := r.inject(ctx, bundle); err != nil || injected {
		return 0, err
	}

	// 3. The serving certificate.
	serving, err := parseKeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
	if err == nil {
		err = servingCertFits(serving, ca, r.dnsNames(), now)
	}
	if err != nil {
		// A replica may serve a certificate of a CA the bundle still holds:
		// replace it only once the API server trusts the new one's CA.
		// Nothing is served on a fresh install: no wait then.
		fresh := len(secret.Data[corev1.TLSCertKey]) == 0 && bytes.Equal(bundle, ca.certPEM)
		if !fresh {
			if wait := r.changed.Add(r.settle).Sub(now); wait > 0 {
				return wait, nil
			}
		}
		next, ierr := newServingCert(ca, r.dnsNames(), now)
		if ierr != nil {
			return 0, ierr
		}
		secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey] = next.certPEM, next.keyPEM
		return write("a new serving certificate", "reason", err.Error(), "notAfter", next.cert.NotAfter.UTC().Format(time.RFC3339))
	}

	// 4. Only the current CA stays trusted.
	if !bytes.Equal(bundle, ca.certPEM) {
		if wait := r.changed.Add(r.settle).Sub(now); wait > 0 {
			return wait, nil
		}
		secret.Data[caCertKey] = ca.certPEM
		return write("the CA bundle without the previous CAs")
	}
	return certCheckEvery, nil
}

// trustedCAs are the unexpired CAs of the Secret's bundle and of the
// validating configuration's caBundle: what a replica may still serve a
// certificate of (the Secret may have been emptied or recreated under
// running replicas).
func (r *certRotator) trustedCAs(ctx context.Context, bundle []byte, now time.Time) ([]*x509.Certificate, error) {
	config, err := r.clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, r.ValidatingWebhookConfiguration, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, err
	}
	bundles := [][]byte{bundle}
	if err == nil {
		for _, w := range config.Webhooks {
			bundles = append(bundles, w.ClientConfig.CABundle)
		}
	}
	var cas []*x509.Certificate
	seen := map[string]bool{}
	for _, b := range bundles {
		certs, _ := parseCertificates(b) // an unparsable bundle trusts nothing
		for _, c := range certs {
			if c.IsCA && now.Before(c.NotAfter) && !seen[string(c.Raw)] {
				seen[string(c.Raw)] = true
				cas = append(cas, c)
			}
		}
	}
	return cas, nil
}

// inject sets every webhook's caBundle in the configurations to bundle,
// and says whether it changed any. A configuration not found is skipped:
// Helm creates it, and its creation triggers another pass.
func (r *certRotator) inject(ctx context.Context, bundle []byte) (bool, error) {
	admission := r.clientset.AdmissionregistrationV1()
	injected := false
	setBundles := func(name string, caBundles []*[]byte) bool {
		changed := false
		for _, b := range caBundles {
			if !bytes.Equal(*b, bundle) {
				*b, changed = bundle, true
			}
		}
		if changed {
			r.changed, injected = r.now(), true
			r.log.Info("injected the CA bundle", "webhookConfiguration", name)
		}
		return changed
	}
	validating, err := admission.ValidatingWebhookConfigurations().Get(ctx, r.ValidatingWebhookConfiguration, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return false, err
	}
	if err == nil {
		var bundles []*[]byte
		for i := range validating.Webhooks {
			bundles = append(bundles, &validating.Webhooks[i].ClientConfig.CABundle)
		}
		if setBundles("validating/"+validating.Name, bundles) {
			if _, err := admission.ValidatingWebhookConfigurations().Update(ctx, validating, metav1.UpdateOptions{FieldManager: "stateguard"}); err != nil {
				return false, err
			}
		}
	}
	if r.MutatingWebhookConfiguration == "" {
		return injected, nil
	}
	mutating, err := admission.MutatingWebhookConfigurations().Get(ctx, r.MutatingWebhookConfiguration, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return injected, nil
	}
	if err != nil {
		return false, err
	}
	var bundles []*[]byte
	for i := range mutating.Webhooks {
		bundles = append(bundles, &mutating.Webhooks[i].ClientConfig.CABundle)
	}
	if setBundles("mutating/"+mutating.Name, bundles) {
		if _, err := admission.MutatingWebhookConfigurations().Update(ctx, mutating, metav1.UpdateOptions{FieldManager: "stateguard"}); err != nil {
			return false, err
		}
	}
	return injected, nil
}

// watch signals changes on every change of the Secret or of a webhook
// configuration, until ctx ends.
func (r *certRotator) watch(ctx context.Context, changes chan<- struct{}) {
	notify := func() {
		select {
		case changes <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}
	named := func(name string, list func(context.Context, metav1.ListOptions) (runtime.Object, error), watchFn func(context.Context, metav1.ListOptions) (watch.Interface, error), obj runtime.Object) {
		selector := fields.OneTermEqualSelector("metadata.name", name).String()
		_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
			ListerWatcher: &cache.ListWatch{
				ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
					o.FieldSelector = selector
					return list(ctx, o)
				},
				WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
					o.FieldSelector = selector
					return watchFn(ctx, o)
				},
			},
			ObjectType: obj,
			Handler:    handler,
		})
		go informer.RunWithContext(ctx)
	}
	secrets := r.clientset.CoreV1().Secrets(r.Namespace)
	named(r.Secret, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return secrets.List(ctx, o) }, secrets.Watch, &corev1.Secret{})
	validating := r.clientset.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	named(r.ValidatingWebhookConfiguration, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return validating.List(ctx, o)
	}, validating.Watch, &admissionregistrationv1.ValidatingWebhookConfiguration{})
	if r.MutatingWebhookConfiguration != "" {
		mutating := r.clientset.AdmissionregistrationV1().MutatingWebhookConfigurations()
		named(r.MutatingWebhookConfiguration, func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return mutating.List(ctx, o) }, mutating.Watch, &admissionregistrationv1.MutatingWebhookConfiguration{})
	}
}
