// Command stateguard keeps stateful workloads from losing data: an admission
// webhook (serve), an offline manifest checker (check) and a live audit (audit),
// all judging with one rule engine.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/term"

	"github.com/stateguard/stateguard/config"
	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/report"
)

// version is set at build time: -ldflags "-X main.version=..."
var version = "dev"

const usage = `stateguard keeps stateful workloads from losing data.

Usage:
  stateguard check -f PATH [-f PATH ...] [-k DIR] [flags]
                               judge manifest files, Helm charts and kustomizations
  stateguard serve [flags]     run the admission webhook
  stateguard audit [-n NAMESPACE | -A] [--config FILE] [-o table|json] [--kubeconfig FILE]
                               judge the workloads running in a cluster
  stateguard version [-o json]

Run "stateguard COMMAND -h" for the flags of a command.
`

func main() {
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// signalled is the cause of a context that SIGINT or SIGTERM cancelled,
// with the exit status a shell gives a command the signal ended.
type signalled struct{ sig syscall.Signal }

func (s signalled) Error() string { return "received " + s.sig.String() }
func (s signalled) ExitCode() int { return 128 + int(s.sig) }

// signalContext is cancelled by SIGINT or SIGTERM, with signalled as its cause.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		if sig, ok := <-signals; ok {
			cancel(signalled{sig.(syscall.Signal)})
		}
	}()
	return ctx, func() {
		signal.Stop(signals)
		close(signals)
		cancel(nil)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return report.ExitInvalid
	}
	switch args[0] {
	case "check":
		return runCheck(ctx, args[1:], stdin, stdout, stderr)
	case "version", "--version":
		return runVersion(args[1:], stdout, stderr)
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

// versionInfo is what `stateguard version -o json` prints.
type versionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
	// Catalogue is the version of the built-in catalogue of data directories.
	Catalogue string `json:"catalogue"`
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("stateguard version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var output string
	fs.StringVar(&output, "o", "", "output format: json (default: one line of text)")
	fs.StringVar(&output, "output", "", "same as -o")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 || output != "" && output != "json" {
		fmt.Fprint(stderr, "Usage: stateguard version [-o json]\n")
		return report.ExitInvalid
	}
	info := versionInfo{Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Catalogue: engine.BuiltinCatalogue().Version}
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(info)
		return report.ExitOK
	}
	fmt.Fprintf(stdout, "stateguard %s %s %s\n", info.Version, info.GoVersion, info.Platform)
	return report.ExitOK
}

// colorOutput says whether the table may be coloured: stdout is a
// terminal and NO_COLOR (https://no-color.org) is unset.
func colorOutput(stdout io.Writer) bool {
	f, ok := stdout.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
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
