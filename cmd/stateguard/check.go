//go:build !nocheck

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/stateguard/stateguard/check"
	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/internal/commalist"
	"github.com/stateguard/stateguard/report"
)

// pathList is a repeatable flag.
type pathList []string

func (p *pathList) String() string     { return strings.Join(*p, ",") }
func (p *pathList) Set(v string) error { *p = append(*p, v); return nil }

const checkUsage = `Usage: stateguard check -f PATH [-f PATH ...] [-k DIR ...] [flags]

Judges manifest files, directories (walked recursively: *.yaml, *.yml, *.json;
a directory holding a Helm chart or a kustomization is rendered), Helm charts,
kustomizations (-k) and standard input (-f -). Files that hold no Kubernetes
objects are skipped with a note (--strict makes them errors).

Exit status: 0 when nothing is at deny (or, with --fail-on warn, at warn), 1 when
anything is, 2 for unreadable input or bad usage, 130 or 143 when interrupted
by SIGINT or SIGTERM.

Flags:
`

func runCheck(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stateguard check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts check.Options
	var configFile, rules, skipRules, failOn, maxFileSize string
	paths := (*pathList)(&opts.Paths)
	fs.Var(paths, "f", "a manifest file, a directory, a Helm chart, or - for standard input; repeatable")
	fs.Var(paths, "filename", "same as -f")
	fs.Var((*pathList)(&opts.Kustomizations), "k", "a directory holding a kustomization, rendered as kustomize build does; repeatable")
	fs.Var((*pathList)(&opts.Kustomizations), "kustomize", "same as -k")
	fs.StringVar(&configFile, "config", "", "a stateguard.io/v1alpha1 Config file (default: the built-in policy)")
	fs.StringVar(&opts.Read.Namespace, "n", "default", "the namespace of objects that name none, and of Helm releases")
	fs.StringVar(&opts.Read.Namespace, "namespace", "default", "same as -n")
	fs.StringVar(&opts.Output, "o", "table", "output format: "+strings.Join(report.Formats, ", "))
	fs.StringVar(&opts.Output, "output", "table", "same as -o")
	fs.StringVar(&rules, "rules", "", "report only these rules (comma-separated rule IDs)")
	fs.StringVar(&skipRules, "skip-rules", "", "never report these rules (comma-separated rule IDs)")
	fs.StringVar(&failOn, "fail-on", "deny", "the least action that fails the run (exit status 1): deny or warn")
	fs.BoolVar(&opts.Read.Strict, "strict", false, "files that hold no Kubernetes objects are errors, not notes")
	fs.StringVar(&maxFileSize, "max-file-size", "256Mi", "the largest file, standard input or rendered chart read (a quantity: 64Mi, 1Gi)")
	chart := &opts.Read.Chart
	fs.Var((*pathList)(&chart.ValuesFiles), "values", "Helm charts: a values file, as helm template -f; repeatable")
	fs.Var((*pathList)(&chart.Set), "set", "Helm charts: set a value (key=value[,key=value]), as helm template --set; repeatable")
	fs.Var((*pathList)(&chart.SetString), "set-string", "Helm charts: set a string value, as helm template --set-string; repeatable")
	fs.StringVar(&chart.ReleaseName, "release-name", "release-name", "Helm charts: the release name, as helm template NAME")
	fs.StringVar(&chart.KubeVersion, "kube-version", "", "Helm charts: the Kubernetes version of .Capabilities (default: Helm's)")
	fs.Usage = func() {
		fmt.Fprint(stderr, checkUsage)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "stateguard check: "+format+"\n\n", a...)
		fs.Usage()
		return report.ExitInvalid
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected argument %q: name inputs with -f", fs.Arg(0))
	case len(opts.Paths) == 0 && len(opts.Kustomizations) == 0:
		return bad("no input: name a file, a directory, a chart or - with -f, or a kustomization with -k")
	case opts.Read.Namespace == "":
		return bad("-n: the namespace may not be empty")
	case !slices.Contains(report.Formats, opts.Output):
		return bad("-o %q: must be one of %s", opts.Output, strings.Join(report.Formats, ", "))
	case failOn != string(engine.ActionDeny) && failOn != string(engine.ActionWarn):
		return bad("--fail-on %q: must be deny or warn", failOn)
	}
	opts.FailOn = engine.Action(failOn)
	size, err := resource.ParseQuantity(maxFileSize)
	if err != nil || size.Value() <= 0 {
		return bad("--max-file-size %q: must be a positive quantity such as 64Mi", maxFileSize)
	}
	opts.Read.MaxFileSize = size.Value()
	for _, list := range []struct {
		flag string
		ids  *[]string
		set  string
	}{{"--rules", &opts.Rules, rules}, {"--skip-rules", &opts.SkipRules, skipRules}} {
		*list.ids = commalist.Split(list.set)
		for _, id := range *list.ids {
			if _, ok := engine.LookupRule(id); !ok {
				return bad("%s: unknown rule %q: the rules are %s", list.flag, id, strings.Join(engine.RuleIDs(), ", "))
			}
		}
	}
	eng, ok := loadEngine("check", configFile, stderr)
	if !ok {
		return report.ExitInvalid
	}
	opts.Write = report.WriteOptions{Version: version, Color: colorOutput(stdout)}
	// Helm logs through the default logger: its warnings reach stderr, its
	// progress does not.
	slog.SetLogLoggerLevel(slog.LevelWarn)
	return check.Run(ctx, eng, opts, stdin, stdout, stderr)
}
