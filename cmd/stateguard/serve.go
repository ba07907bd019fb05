package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	polv1alpha2 "github.com/kyverno/kyverno/api/policyreport/v1alpha2"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/stateguard/stateguard/audit"
	"github.com/stateguard/stateguard/report"
	"github.com/stateguard/stateguard/webhook"
)

// runServe runs the admission webhook until ctx ends (SIGTERM): the webhook
// server then stops accepting, finishes in-flight reviews and closes idle
// connections before the process exits.
func runServe(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("stateguard serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		kubeconfig, configFile, certDir, metricsAddr, probeAddr     string
		certSecret, webhookService, webhookConfiguration, namespace string
		certificate                                                 string
		port                                                        int
		leaderElect                                                 bool
		auditInterval                                               time.Duration
		excluded, auditLedger                                       string
	)
	fs.StringVar(&kubeconfig, "kubeconfig", "", "path to a kubeconfig (default: in-cluster, or $KUBECONFIG)")
	fs.StringVar(&configFile, "config", "", "a stateguard.io/v1alpha1 Config file, reloaded when it changes (default: the built-in policy)")
	fs.IntVar(&port, "port", 9443, "the port the webhook serves on")
	fs.StringVar(&certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "the directory holding tls.crt and tls.key, reloaded when they change")
	fs.StringVar(&metricsAddr, "metrics-bind-address", ":8080", `the address of the metrics endpoint ("0" disables it)`)
	fs.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "the address of /healthz and /readyz")
	fs.BoolVar(&leaderElect, "leader-elect", false, "elect a leader among replicas for the background audit")
	fs.DurationVar(&auditInterval, "audit-interval", 0, "how often to audit the cluster in the background, on the elected leader (0 disables it)")
	fs.StringVar(&auditLedger, "audit-ledger", "stateguard-audit", "the ConfigMap (in --namespace) where the background audit records which violations have had their Event, so that none is recorded twice")
	fs.StringVar(&excluded, "exclude-namespaces", strings.Join(audit.DefaultExcludedNamespaces, ","), "the namespaces the background audit skips, comma-separated: those the webhook configurations exclude")
	// Stack traces only for panics: a client's malformed request is logged
	// as an error, and a trace of the HTTP stack says nothing about it.
	fs.StringVar(&certSecret, "cert-secret", "", "self-managed TLS: keep a generated CA and serving certificate in this Secret (mounted at --cert-dir), renew them, and inject the CA into the webhook configurations")
	fs.StringVar(&webhookService, "webhook-service", "", "self-managed TLS: the Service the API server calls (the certificate is for NAME.NAMESPACE.svc)")
	fs.StringVar(&webhookConfiguration, "webhook-configuration", "", "self-managed TLS: the name of the validating and mutating webhook configurations")
	fs.StringVar(&certificate, "certificate", "", "the cert-manager Certificate (in --namespace) that issues the serving certificate: export stateguard_certificate_ready and stateguard_certificate_expiry_timestamp_seconds")
	fs.StringVar(&namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the namespace of the Certificate, of the self-managed Secret and the Service, and of the --audit-ledger ConfigMap (default: $POD_NAMESPACE)")
	zapOpts := zap.Options{StacktraceLevel: zapcore.PanicLevel}
	zapOpts.BindFlags(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "stateguard serve: unexpected argument %q\n", fs.Arg(0))
		return report.ExitInvalid
	}
	if auditInterval < 0 {
		fmt.Fprintf(stderr, "stateguard serve: --audit-interval %v: must be positive, or 0 to disable the background audit\n", auditInterval)
		return report.ExitInvalid
	}
	if auditInterval > 0 && namespace == "" {
		fmt.Fprintln(stderr, "stateguard serve: --audit-interval needs --namespace (or $POD_NAMESPACE) for the ConfigMap of --audit-ledger")
		return report.ExitInvalid
	}
	opts := webhook.Options{
		ConfigFile: configFile, CertDir: certDir, Certificate: certificate, CertificateNamespace: namespace,
		AuditInterval: auditInterval, ExcludedNamespaces: splitList(excluded),
		AuditLedger: types.NamespacedName{Namespace: namespace, Name: auditLedger},
	}
	if certificate != "" && namespace == "" {
		fmt.Fprintln(stderr, "stateguard serve: --certificate needs --namespace (or $POD_NAMESPACE)")
		return report.ExitInvalid
	}
	if certSecret != "" || webhookService != "" || webhookConfiguration != "" {
		if certSecret == "" || webhookService == "" || webhookConfiguration == "" || namespace == "" {
			fmt.Fprintln(stderr, "stateguard serve: self-managed TLS needs --cert-secret, --webhook-service, --webhook-configuration and --namespace (or $POD_NAMESPACE) together")
			return report.ExitInvalid
		}
		opts.CertRotation = &webhook.CertRotation{
			Namespace: namespace, Secret: certSecret, Service: webhookService,
			WebhookConfiguration: webhookConfiguration, LeaderElection: leaderElect,
		}
	}
	log := zap.New(zap.UseFlagOptions(&zapOpts))
	ctrl.SetLogger(log)

	restConfig, err := restConfig(kubeconfig)
	if err != nil {
		fmt.Fprintf(stderr, "stateguard serve: %v\n", err)
		return report.ExitInvalid
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := polv1alpha2.AddToScheme(scheme); err != nil {
		panic(err)
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:        probeAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              "stateguard.io",
		LeaderElectionReleaseOnCancel: true,      // hand over at once on SIGTERM
		LeaderElectionNamespace:       namespace, // in a cluster, "" means the Pod's own
		Cache:                         cache.Options{DefaultTransform: webhook.SlimObject},
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{
			Port:    port,
			CertDir: certDir,
			TLSOpts: []func(*tls.Config){func(c *tls.Config) {
				c.MinVersion = tls.VersionTLS12
				// HTTP/2 off: its stream multiplexing has had denial-of-service flaws (CVE-2023-44487).
				c.NextProtos = []string{"http/1.1"}
			}},
		}),
	})
	if err != nil {
		log.Error(err, "creating the manager")
		return report.ExitInvalid
	}
	if err := webhook.Setup(ctx, mgr, opts, log); err != nil {
		log.Error(err, "setting up the webhook")
		return report.ExitInvalid
	}
	log.Info("starting", "version", version, "port", port, "config", configFile)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "the manager stopped")
		return 1
	}
	return report.ExitOK
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return ctrl.GetConfig()
}
