package server

import (
	"fmt"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// CertRotation names what self-managed TLS keeps up to date.
type CertRotation struct {
	Namespace            string // of the Secret and the Service
	Secret               string // holds ca.crt, tls.crt and tls.key
	Service              string // the webhook Service the certificate is for
	WebhookConfiguration string // the validating and mutating configurations' name
}

// addCertRotator has OPA's cert-controller (the rotator Gatekeeper uses)
// generate the CA and serving certificate into the Secret, renew them
// before they expire, and inject the CA into both webhook configurations.
// Every replica serves the certificate from the Secret's volume; the
// leader rotates it, with a rotator of its own for each term (term names
// its controller: controller names are unique in a process).
func addCertRotator(mgr manager.Manager, c CertRotation, certDir string, term int) error {
	if c.Namespace == "" || c.Secret == "" || c.Service == "" || c.WebhookConfiguration == "" {
		return fmt.Errorf("self-managed TLS needs the namespace, the Secret, the Service and the webhook configuration names (got %+v)", c)
	}
	dns := fmt.Sprintf("%s.%s.svc", c.Service, c.Namespace)
	return rotator.AddRotator(mgr, &rotator.CertRotator{
		SecretKey:      types.NamespacedName{Namespace: c.Namespace, Name: c.Secret},
		CertDir:        certDir,
		CAName:         "stateguard-ca",
		CAOrganization: "stateguard",
		DNSName:        dns,
		ExtraDNSNames:  []string{dns + ".cluster.local"},
		IsReady:        make(chan struct{}),
		Webhooks: []rotator.WebhookInfo{
			{Name: c.WebhookConfiguration, Type: rotator.Validating},
			{Name: c.WebhookConfiguration, Type: rotator.Mutating},
		},
		FieldOwner:     "stateguard",
		ControllerName: fmt.Sprintf("stateguard-cert-rotator-%d", term),
	})
}
