package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/stateguard/stateguard/audit"
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

// splitList splits a comma-separated flag value, dropping blanks.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stateguard audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opts                                    audit.Options
		kubeconfig, kubeContext, as, configFile string
		allNamespaces                           bool
		excluded                                string
	)
	fs.StringVar(&kubeconfig, "kubeconfig", "", "path to a kubeconfig (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)")
	fs.StringVar(&kubeContext, "context", "", "the kubeconfig context to use (default: the current one)")
	fs.StringVar(&as, "as", "", "the user to impersonate, as kubectl --as does")
	fs.StringVar(&opts.Namespace, "n", "", "the namespace to audit (default: the context's namespace)")
	fs.StringVar(&opts.Namespace, "namespace", "", "same as -n")
	fs.BoolVar(&allNamespaces, "A", false, "audit all namespaces but the excluded ones and those labelled "+audit.LabelIgnore+"=true")
	fs.BoolVar(&allNamespaces, "all-namespaces", false, "same as -A")
	fs.StringVar(&excluded, "exclude-namespaces", "", "with -A, the namespaces to skip, comma-separated (default: those the installed ValidatingWebhookConfiguration excludes, else kube-system,kube-node-lease)")
	fs.StringVar(&configFile, "config", "", "a stateguard.io/v1alpha1 Config file (default: the built-in policy)")
	outputFlags(fs, &opts.Output)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: stateguard audit [-n NAMESPACE | -A] [--config FILE] [-o table|json] [--kubeconfig FILE] [--context NAME]\n\n"+
			"Judges the StatefulSets, Deployments and HorizontalPodAutoscalers in the cluster as `stateguard check` judges manifests.\n"+
			"Exit status: 0 when nothing is at deny, 1 when anything is, 2 when the cluster cannot be read or for bad usage.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "stateguard audit: unexpected argument %q\n", fs.Arg(0))
		return report.ExitInvalid
	case allNamespaces && opts.Namespace != "":
		fmt.Fprintln(stderr, "stateguard audit: -n and -A exclude each other: name one namespace or all")
		return report.ExitInvalid
	case !validOutput("audit", opts.Output, stderr):
		return report.ExitInvalid
	}
	opts.Excluded = splitList(excluded)
	if !flagSet(fs, "exclude-namespaces") {
		opts.Excluded = audit.DefaultExcludedNamespaces
	}
	eng, ok := loadEngine("audit", configFile, stderr)
	if !ok {
		return report.ExitInvalid
	}

	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: kubeContext}
	overrides.AuthInfo.Impersonate = as
	clientConfig := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	restConfig, err := clientConfig.ClientConfig()
	if err != nil {
		fmt.Fprintf(stderr, "stateguard audit: %v\n", err)
		return report.ExitInvalid
	}
	if !allNamespaces && opts.Namespace == "" {
		if opts.Namespace, _, err = clientConfig.Namespace(); err != nil {
			fmt.Fprintf(stderr, "stateguard audit: %v\n", err)
			return report.ExitInvalid
		}
	}
	// Lists of thousands of objects: protobuf is several times cheaper to
	// decode than JSON, and the kinds are listed concurrently.
	restConfig.ContentType = "application/vnd.kubernetes.protobuf"
	restConfig.QPS, restConfig.Burst = 50, 100
	restConfig.UserAgent = "stateguard-audit/" + version
	cs, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		fmt.Fprintf(stderr, "stateguard audit: %v\n", err)
		return report.ExitInvalid
	}
	if allNamespaces && !flagSet(fs, "exclude-namespaces") {
		opts.Excluded = installedExclusions(ctx, cs, opts.Excluded, stderr)
	}
	var progress audit.Progress
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		progress = audit.TerminalProgress(stderr)
	}
	return audit.Run(ctx, eng, cs, opts, progress, stdout, stderr)
}
