// Command stateguard keeps stateful workloads from losing data: an admission
// webhook (serve), an offline manifest checker (check) and a live audit (audit),
// all judging with one rule engine.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/stateguard/stateguard/check"
	"github.com/stateguard/stateguard/config"
	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/report"
)

// version is set at build time: -ldflags "-X main.version=..."
var version = "dev"

const usage = `stateguard keeps stateful workloads from losing data.

Usage:
  stateguard check -f PATH [-f PATH ...] [--config FILE] [-n NAMESPACE] [-o table|json]
  stateguard serve [flags]     run the admission webhook
  stateguard audit [-n NAMESPACE | -A] [--config FILE] [-o table|json] [--kubeconfig FILE]
                               judge the workloads running in a cluster
  stateguard version

Run "stateguard COMMAND -h" for the flags of a command.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return report.ExitInvalid
	}
	switch args[0] {
	case "check":
		return runCheck(ctx, args[1:], stdin, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "stateguard %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return report.ExitOK
	case "serve":
		return runServe(ctx, args[1:], stderr)
	case "audit":
		return runAudit(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return report.ExitOK
	}
	fmt.Fprintf(stderr, "stateguard: unknown command %q\n\n%s", args[0], usage)
	return report.ExitInvalid
}

// pathList is a repeatable -f flag.
type pathList []string

func (p *pathList) String() string     { return strings.Join(*p, ",") }
func (p *pathList) Set(v string) error { *p = append(*p, v); return nil }

func runCheck(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stateguard check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts check.Options
	var configFile string
	paths := (*pathList)(&opts.Paths)
	fs.Var(paths, "f", "a manifest file, a directory (read recursively: *.yaml, *.yml, *.json), or - for standard input; repeatable")
	fs.Var(paths, "filename", "same as -f")
	fs.StringVar(&configFile, "config", "", "a stateguard.io/v1alpha1 Config file (default: the built-in policy)")
	fs.StringVar(&opts.Namespace, "n", "default", "the namespace of objects that name none")
	fs.StringVar(&opts.Namespace, "namespace", "default", "same as -n")
	outputFlags(fs, &opts.Output)
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: stateguard check -f PATH [-f PATH ...] [--config FILE] [-n NAMESPACE] [-o table|json]\n\n"+
			"Exit status: 0 when nothing is at deny, 1 when anything is, 2 for unreadable input or bad usage.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "stateguard check: unexpected argument %q: name inputs with -f\n", fs.Arg(0))
		return report.ExitInvalid
	case len(opts.Paths) == 0:
		fmt.Fprintln(stderr, "stateguard check: no input: name a file, a directory or - with -f")
		return report.ExitInvalid
	case opts.Namespace == "":
		fmt.Fprintln(stderr, "stateguard check: -n: the namespace may not be empty")
		return report.ExitInvalid
	}
	if err := validOutput(opts.Output); err != nil {
		fmt.Fprintf(stderr, "stateguard check: %v\n", err)
		return report.ExitInvalid
	}
	eng, ok := loadEngine("check", configFile, stderr)
	if !ok {
		return report.ExitInvalid
	}
	return check.Run(ctx, eng, opts, stdin, stdout, stderr)
}

// parseFlags parses a command's flags; when ok is false the command exits
// with code: 0 after -h, 2 for a bad flag (the flag package said which).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return report.ExitOK, false
		}
		return report.ExitInvalid, false
	}
	return report.ExitOK, true
}

func outputFlags(fs *flag.FlagSet, output *string) {
	fs.StringVar(output, "o", "table", "output format: table or json")
	fs.StringVar(output, "output", "table", "same as -o")
}

func validOutput(output string) error {
	if output != "table" && output != "json" {
		return fmt.Errorf("-o %q: must be table or json", output)
	}
	return nil
}

// loadEngine compiles the policy of --config, or the built-in one.
func loadEngine(command, configFile string, stderr io.Writer) (*engine.Engine, bool) {
	cfg := config.Default()
	if configFile != "" {
		var err error
		if cfg, err = config.Load(configFile); err != nil {
			fmt.Fprintf(stderr, "stateguard %s: %v\n", command, err)
			return nil, false
		}
	}
	return engine.New(cfg.Settings()), true
}
