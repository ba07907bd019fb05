package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/stateguard/stateguard/audit"
	"github.com/stateguard/stateguard/internal/commalist"
	"github.com/stateguard/stateguard/report"
)

// installedExclusions skips what the installed webhook never judges (its
// release namespace among them), falling back to the defaults.
func installedExclusions(ctx context.Context, cs kubernetes.Interface, defaults []string, stderr io.Writer) []string {
	namespaces, configuration, err := audit.InstalledExclusions(ctx, cs)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "note: cannot read the webhook configurations (%v): skipping %s; name the namespaces stateguard never judges with --exclude-namespaces\n", err, strings.Join(defaults, ", "))
	case configuration == "":
		fmt.Fprintf(stderr, "note: stateguard's webhook configuration is not installed: skipping %s\n", strings.Join(defaults, ", "))
	default:
		fmt.Fprintf(stderr, "note: skipping the namespaces ValidatingWebhookConfiguration %s never sends: %s\n", configuration, strings.Join(namespaces, ", "))
		return namespaces
	}
	return defaults
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// auditOptions are the flags of `stateguard audit`.
type auditOptions struct {
	audit.Options
	kubeconfig, kubeContext, as, configFile string
	allNamespaces                           bool
	excluded                                string
}

func (o *auditOptions) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.kubeconfig, "kubeconfig", "", "path to a kubeconfig (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)")
	fs.StringVar(&o.kubeContext, "context", "", "the kubeconfig context to use (default: the current one)")
	fs.StringVar(&o.as, "as", "", "the user to impersonate, as kubectl --as does")
	fs.StringVar(&o.Namespace, "n", "", "the namespace to audit (default: the context's namespace)")
	fs.StringVar(&o.Namespace, "namespace", "", "same as -n")
	fs.BoolVar(&o.allNamespaces, "A", false, "audit all namespaces but the excluded ones and those labelled "+audit.LabelIgnore+"=true")
	fs.BoolVar(&o.allNamespaces, "all-namespaces", false, "same as -A")
	fs.StringVar(&o.excluded, "exclude-namespaces", "", "with -A, the namespaces to skip, comma-separated (default: those the installed ValidatingWebhookConfiguration excludes, else kube-system,kube-node-lease)")
	fs.StringVar(&o.configFile, "config", "", "a stateguard.io/v1alpha1 Config file (default: the built-in policy)")
	outputFlags(fs, &o.Output)
}

func (o *auditOptions) validate() error {
	if o.allNamespaces && o.Namespace != "" {
		return errors.New("-n and -A exclude each other: name one namespace or all")
	}
	return validOutput(o.Output)
}

// clientConfig is the kubeconfig as the flags select and override it.
func (o *auditOptions) clientConfig() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.kubeContext}
	overrides.AuthInfo.Impersonate = o.as
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stateguard audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o auditOptions
	o.addFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: stateguard audit [-n NAMESPACE | -A] [--config FILE] [-o table|json] [--kubeconfig FILE] [--context NAME]\n\n"+
			"Judges the StatefulSets, Deployments and HorizontalPodAutoscalers in the cluster as `stateguard check` judges manifests.\n"+
			"Exit status: 0 when nothing is at deny, 1 when anything is, 2 when the cluster cannot be read or for bad usage.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "stateguard audit: unexpected argument %q\n", fs.Arg(0))
		return report.ExitInvalid
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(stderr, "stateguard audit: %v\n", err)
		return report.ExitInvalid
	}
	o.Excluded = commalist.Split(o.excluded)
	if !flagSet(fs, "exclude-namespaces") {
		o.Excluded = audit.DefaultExcludedNamespaces
	}
	eng, ok := loadEngine("audit", o.configFile, stderr)
	if !ok {
		return report.ExitInvalid
	}
	clientConfig := o.clientConfig()
	restConfig, err := clientConfig.ClientConfig()
	if err != nil {
		fmt.Fprintf(stderr, "stateguard audit: %v\n", err)
		return report.ExitInvalid
	}
	if !o.allNamespaces && o.Namespace == "" {
		if o.Namespace, _, err = clientConfig.Namespace(); err != nil {
			fmt.Fprintf(stderr, "stateguard audit: %v\n", err)
			return report.ExitInvalid
		}
	}
	// Protobuf is several times cheaper to decode than JSON; the audit's
	// lists ask for it themselves, the other requests by this.
	restConfig.ContentType = "application/vnd.kubernetes.protobuf"
	restConfig.QPS, restConfig.Burst = 50, 100
	restConfig.UserAgent = "stateguard-audit/" + version
	cs, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		fmt.Fprintf(stderr, "stateguard audit: %v\n", err)
		return report.ExitInvalid
	}
	if o.allNamespaces && !flagSet(fs, "exclude-namespaces") {
		o.Excluded = installedExclusions(ctx, cs, o.Excluded, stderr)
	}
	var progress audit.Progress
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		progress = audit.TerminalProgress(stderr)
	}
	return audit.Run(ctx, eng, cs, o.Options, progress, stdout, stderr)
}
