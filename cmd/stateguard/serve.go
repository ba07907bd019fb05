package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	polv1alpha2 "github.com/kyverno/kyverno/api/policyreport/v1alpha2"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/stateguard/stateguard/audit"
	"github.com/stateguard/stateguard/internal/commalist"
	"github.com/stateguard/stateguard/internal/metricsauth"
	"github.com/stateguard/stateguard/internal/server"
	"github.com/stateguard/stateguard/webhook"
)

// Exit statuses of serve.
const (
	exitServeStopped = 0 // stopped by a signal
	exitServeFailed  = 1 // the server failed while running
	exitServeInvalid = 2 // bad usage, or the server could not be set up
)

// serveOptions are the flags of `stateguard serve`.
type serveOptions struct {
	kubeconfig, configFile, certDir, metricsAddr, probeAddr     string
	certSecret, webhookService, webhookConfiguration, namespace string
	mutatingWebhookConfiguration, certificate, clientCAFile     string
	metricsSecure                                               bool
	port                                                        int
	leaderElect                                                 bool
	auditInterval                                               time.Duration
	excluded, auditLedger                                       string
	passResults                                                 bool
	limits                                                      webhook.Limits
	shutdownDelay                                               time.Duration
	memoryLimit                                                 int64
	qps                                                         float64
	burst                                                       int
	zap                                                         zap.Options
}

func (o *serveOptions) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "path to a kubeconfig (default: in-cluster, or $KUBECONFIG)")
	fs.StringVar(&o.configFile, "config", "", "a stateguard.io/v1alpha1 Config file, reloaded when it changes (default: the built-in policy)")
	fs.IntVar(&o.port, "port", 9443, "the port the webhook serves on")
	fs.StringVar(&o.certDir, "cert-dir", "/tmp/k8s-webhook-server/serving-certs", "the directory holding tls.crt and tls.key, reloaded when they change")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", `the address of the metrics endpoint ("0" disables it)`)
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true, "serve /metrics over HTTPS (a self-signed certificate) to clients the API server authenticates (a bearer token) and authorizes (get on the non-resource URL /metrics); false: plain HTTP to anyone who reaches it")
	fs.StringVar(&o.clientCAFile, "client-ca-file", "", "accept webhook connections only from clients with a certificate signed by a CA in this PEM file: the API server's client certificate for webhooks (--admission-control-config-file)")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "the address of /healthz and /readyz")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "elect a leader among replicas (Lease stateguard.io in --namespace) for the background audit and self-managed certificate rotation; losing the Lease stops that work, never the webhook")
	fs.DurationVar(&o.auditInterval, "audit-interval", 0, "how often to audit the cluster in the background, on the elected leader (0 disables it)")
	fs.BoolVar(&o.passResults, "policy-report-pass-results", true, "the background audit's PolicyReports hold a pass result for each rule a workload complies with (false: violations only, for large clusters)")
	fs.StringVar(&o.auditLedger, "audit-ledger", "stateguard-audit", "the ConfigMap (in --namespace) where the background audit records which violations have had their Event, so that none is recorded twice")
	fs.StringVar(&o.excluded, "exclude-namespaces", strings.Join(audit.DefaultExcludedNamespaces, ","), "the namespaces the background audit skips, comma-separated: those the webhook configurations exclude")
	fs.StringVar(&o.certSecret, "cert-secret", "", "self-managed TLS: keep a generated CA and serving certificate in this Secret (mounted at --cert-dir), renew them, and inject the CA into the webhook configurations")
	fs.StringVar(&o.webhookService, "webhook-service", "", "self-managed TLS: the Service the API server calls (the certificate is for NAME.NAMESPACE.svc)")
	fs.StringVar(&o.webhookConfiguration, "webhook-configuration", "", "self-managed TLS: the ValidatingWebhookConfiguration to inject the CA into")
	fs.StringVar(&o.mutatingWebhookConfiguration, "mutating-webhook-configuration", "", "the MutatingWebhookConfiguration that sends StatefulSets to the defaulting webhook, registered when the policy sets a default (self-managed TLS injects the CA into it); without it, defaults in --config are not applied and a warning says so")
	fs.StringVar(&o.certificate, "certificate", "", "the cert-manager Certificate (in --namespace) that issues the serving certificate: export stateguard_certificate_ready and stateguard_certificate_expiry_timestamp_seconds")
	fs.StringVar(&o.namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the namespace of the Certificate, of the self-managed Secret and the Service, and of the --audit-ledger ConfigMap (default: $POD_NAMESPACE)")
	fs.IntVar(&o.limits.InFlight, "max-reviews-in-flight", webhook.DefaultLimits.InFlight, "how many reviews are handled at once; more get 429 Too Many Requests at once")
	fs.IntVar(&o.limits.InFlightLarge, "max-large-reviews-in-flight", webhook.DefaultLimits.InFlightLarge, "how many of those may have a body above 1 MiB (up to 7 MiB each)")
	fs.DurationVar(&o.limits.ReadTimeout, "review-read-timeout", webhook.DefaultLimits.ReadTimeout, "how long a review's body may take to arrive")
	fs.DurationVar(&o.shutdownDelay, "shutdown-delay", 0, "after SIGTERM, keep serving this long while /readyz reports not ready, closing each connection after its answer, so that clients such as the API server drop the connections they keep to this replica before it closes them (the chart: 2s, after its preStop sleep)")
	fs.Int64Var(&o.memoryLimit, "memory-limit", memoryLimitFromEnv(), "the container's memory limit in bytes (default: $MEMORY_LIMIT): the garbage collector keeps the heap under 90% of it; GOMEMLIMIT, when set, wins; 0 sets none")
	fs.Float64Var(&o.qps, "kube-api-qps", 50, "requests per second to the API server for the background audit, leader election and certificate rotation (live reads for a review are bounded by the reviews in flight instead)")
	fs.IntVar(&o.burst, "kube-api-burst", 100, "the burst above --kube-api-qps")
	// Stack traces only for panics: a client's malformed request is logged
	// as an error, and a trace of the HTTP stack says nothing about it.
	o.zap = zap.Options{StacktraceLevel: zapcore.PanicLevel}
	o.zap.BindFlags(fs)
}

func (o *serveOptions) validate() error {
	selfManaged := o.certSecret != "" || o.webhookService != "" || o.webhookConfiguration != ""
	switch {
	case o.auditInterval < 0:
		return fmt.Errorf("--audit-interval %v: must be positive, or 0 to disable the background audit", o.auditInterval)
	case o.auditInterval > 0 && o.namespace == "":
		return errors.New("--audit-interval needs --namespace (or $POD_NAMESPACE) for the ConfigMap of --audit-ledger")
	case o.leaderElect && o.namespace == "":
		return errors.New("--leader-elect needs --namespace (or $POD_NAMESPACE) for its Lease")
	case o.certificate != "" && o.namespace == "":
		return errors.New("--certificate needs --namespace (or $POD_NAMESPACE)")
	case selfManaged && (o.certSecret == "" || o.webhookService == "" || o.webhookConfiguration == "" || o.namespace == ""):
		return errors.New("self-managed TLS needs --cert-secret, --webhook-service, --webhook-configuration and --namespace (or $POD_NAMESPACE) together")
	case o.limits.InFlight < 1 || o.limits.InFlightLarge < 1:
		return fmt.Errorf("--max-reviews-in-flight %d and --max-large-reviews-in-flight %d: must be at least 1", o.limits.InFlight, o.limits.InFlightLarge)
	case o.limits.ReadTimeout <= 0:
		return fmt.Errorf("--review-read-timeout %v: must be positive", o.limits.ReadTimeout)
	case o.shutdownDelay < 0:
		return fmt.Errorf("--shutdown-delay %v: must be 0 or more", o.shutdownDelay)
	case o.memoryLimit < 0:
		return fmt.Errorf("--memory-limit %d: must be 0 or more bytes", o.memoryLimit)
	case o.qps <= 0 || o.burst < 1:
		return fmt.Errorf("--kube-api-qps %v and --kube-api-burst %d: must be positive", o.qps, o.burst)
	}
	return nil
}

// server is what the flags ask of the server.
func (o *serveOptions) server() server.Options {
	opts := server.Options{
		ConfigFile: o.configFile, CertDir: o.certDir, Certificate: o.certificate, CertificateNamespace: o.namespace,
		AuditInterval: o.auditInterval, ExcludedNamespaces: commalist.Split(o.excluded),
		AuditLedger:    types.NamespacedName{Namespace: o.namespace, Name: o.auditLedger},
		PassResults:    o.passResults,
		Limits:         o.limits,
		LeaderElection: o.leaderElect, LeaderElectionNamespace: o.namespace,
		MutatingWebhookConfiguration: o.mutatingWebhookConfiguration,
	}
	if o.certSecret != "" {
		opts.CertRotation = &server.CertRotation{
			Namespace: o.namespace, Secret: o.certSecret, Service: o.webhookService,
			ValidatingWebhookConfiguration: o.webhookConfiguration,
			MutatingWebhookConfiguration:   o.mutatingWebhookConfiguration,
		}
	}
	return opts
}

// runServe runs the admission webhook until ctx ends (SIGTERM): /readyz
// then fails at once, the webhook keeps serving for --shutdown-delay,
// closing each connection after its answer, and then stops accepting,
// finishes in-flight reviews and closes idle connections before the
// process exits.
func runServe(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("stateguard serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o serveOptions
	o.addFlags(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "stateguard serve: unexpected argument %q\n", fs.Arg(0))
		return exitServeInvalid
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(stderr, "stateguard serve: %v\n", err)
		return exitServeInvalid
	}
	log := zap.New(zap.UseFlagOptions(&o.zap))
	ctrl.SetLogger(log)
	klog.SetLogger(log) // client-go's leader election and caches log through klog
	if o.memoryLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		// Collect before the kernel OOM-kills the replica: the heap is
		// most, not all, of what the container holds.
		debug.SetMemoryLimit(o.memoryLimit / 10 * 9)
	}

	restConfig, err := restConfig(o.kubeconfig)
	if err != nil {
		fmt.Fprintf(stderr, "stateguard serve: %v\n", err)
		return exitServeInvalid
	}
	restConfig.QPS, restConfig.Burst = float32(o.qps), o.burst
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := polv1alpha2.AddToScheme(scheme); err != nil {
		panic(err)
	}
	tlsOpts, err := o.tlsOptions()
	if err != nil {
		fmt.Fprintf(stderr, "stateguard serve: %v\n", err)
		return exitServeInvalid
	}
	metrics := metricsserver.Options{BindAddress: o.metricsAddr}
	if o.metricsSecure {
		metrics.SecureServing, metrics.FilterProvider, metrics.TLSOpts = true, metricsauth.Filter, []func(*tls.Config){serverTLS}
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metrics,
		HealthProbeBindAddress: o.probeAddr,
		// No leader election here: the server elects the leader of the
		// audit and certificate rotation itself, so that losing the Lease
		// stops that work and not the webhook.
		WebhookServer: ctrlwebhook.NewServer(ctrlwebhook.Options{Port: o.port, CertDir: o.certDir, TLSOpts: tlsOpts}),
	})
	if err != nil {
		log.Error(err, "creating the manager")
		return exitServeInvalid
	}
	// From SIGTERM on, /readyz fails and each answer closes its
	// connection, for --shutdown-delay, before the listener closes.
	var stopping atomic.Bool
	opts := o.server()
	opts.Draining = stopping.Load
	if err := server.Setup(ctx, mgr, opts, log); err != nil {
		log.Error(err, "setting up the server")
		return exitServeInvalid
	}
	if err := mgr.AddReadyzCheck("shutdown", func(*http.Request) error {
		if stopping.Load() {
			return errors.New("shutting down")
		}
		return nil
	}); err != nil {
		log.Error(err, "setting up the server")
		return exitServeInvalid
	}
	run, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go func() {
		select {
		case <-ctx.Done():
		case <-run.Done():
			return
		}
		stopping.Store(true)
		log.Info("stopping: not ready, serving on until the delay ends", "delay", o.shutdownDelay.String())
		select {
		case <-time.After(o.shutdownDelay):
		case <-run.Done():
		}
		stop()
	}()
	log.Info("starting", "version", version, "port", o.port, "config", o.configFile, "goMemoryLimit", debug.SetMemoryLimit(-1))
	if err := mgr.Start(run); err != nil {
		log.Error(err, "the manager stopped")
		return exitServeFailed
	}
	return exitServeStopped
}

// serverTLS is the TLS of every listener: TLS 1.2 and up, at TLS 1.2 only
// the ECDHE suites with AEAD ciphers (TLS 1.3's are all AEAD), and no
// HTTP/2, whose stream multiplexing has had denial-of-service flaws
// (CVE-2023-44487).
func serverTLS(c *tls.Config) {
	c.MinVersion = tls.VersionTLS12
	c.CipherSuites = []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	}
	c.NextProtos = []string{"http/1.1"}
}

// tlsOptions are the webhook listener's: serverTLS, and with
// --client-ca-file, a client certificate signed by one of its CAs.
func (o *serveOptions) tlsOptions() ([]func(*tls.Config), error) {
	opts := []func(*tls.Config){serverTLS}
	if o.clientCAFile == "" {
		return opts, nil
	}
	data, err := os.ReadFile(o.clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("--client-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("--client-ca-file %s: no PEM certificate in it", o.clientCAFile)
	}
	return append(opts, func(c *tls.Config) {
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}), nil
}

// memoryLimitFromEnv reads $MEMORY_LIMIT, the container's limit in bytes
// as the downward API gives it; 0 when unset or unreadable.
func memoryLimitFromEnv() int64 {
	n, err := strconv.ParseInt(os.Getenv("MEMORY_LIMIT"), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return ctrl.GetConfig()
}
