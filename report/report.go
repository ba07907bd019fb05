// Package report prints engine results the way `stateguard check` and
// `stateguard audit` show them, and derives their exit status.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/stateguard/stateguard/engine"
)

// Exit statuses shared by check and audit.
const (
	ExitOK      = 0 // nothing is at deny
	ExitDenied  = 1 // something is at deny
	ExitInvalid = 2 // unreadable input or bad usage
)

// Entry is one result with where its object came from: the output format
// of check and audit, kept apart from the engine's Result so that the
// engine's shape never changes what scripts read.
type Entry struct {
	Rule      string        `json:"rule"`
	Action    engine.Action `json:"action"`
	Kind      string        `json:"kind"`
	Namespace string        `json:"namespace"`
	Name      string        `json:"name"`
	Field     string        `json:"field"`
	Message   string        `json:"message"`
	Source    string        `json:"source"`
	// Line is the line of its file where the object starts (check only).
	Line int `json:"line,omitempty"`
	// Exemption says what exempts an exempt result: a policy exemption
	// and its reason, or the object's annotation.
	Exemption string `json:"exemption,omitempty"`
	// Intended is the action enforcing would give a dryrun result.
	Intended engine.Action `json:"-"`
}

// Report is the printed outcome of judging a set of objects.
type Report struct {
	Results []Entry `json:"results"`
	// Errors are the inputs that could not be read (check only).
	Errors []Problem `json:"errors,omitempty"`
	// Objects counts the objects judged, for the summary line.
	Objects int `json:"-"`
	// Judged are the workloads and HPAs the rules judged, compliant or not
	// (JUnit's test cases).
	Judged []Subject `json:"-"`
	// FailOn is the least action that fails the run: deny (the default) or warn.
	FailOn engine.Action `json:"-"`
}

// Subject is an object the rules judged, and where it came from.
type Subject struct {
	Kind, Namespace, Name, Source string
	Line                          int
}

// Problem is an input that could not be read, or a document that could not
// be decoded, where Source names it.
type Problem struct {
	Source  string `json:"source"`
	Message string `json:"message"`
}

// Add appends the results of one object.
func (r *Report) Add(source string, line int, results []engine.Result) {
	for _, res := range results {
		r.Results = append(r.Results, Entry{
			Rule: res.Rule, Action: res.Action, Kind: res.Kind, Namespace: res.Namespace, Name: res.Name,
			Field: res.Field.String(), Message: res.Message, Source: source, Line: line, Intended: res.Intended, Exemption: res.Exemption,
		})
	}
}

// Fails says whether a result fails the run: it is at deny, or at warn
// when the run fails on warnings.
func (r *Report) Fails(e Entry) bool {
	return e.Action == engine.ActionDeny || r.FailOn == engine.ActionWarn && e.Action == engine.ActionWarn
}

// ExitCode is ExitInvalid when an input could not be read, ExitDenied when
// any result fails the run, else ExitOK.
func (r *Report) ExitCode() int {
	if len(r.Errors) > 0 {
		return ExitInvalid
	}
	for _, e := range r.Results {
		if r.Fails(e) {
			return ExitDenied
		}
	}
	return ExitOK
}

// Formats are the output formats of Write.
var Formats = []string{"table", "json", "sarif", "junit", "github"}

// WriteOptions say how Write prints.
type WriteOptions struct {
	// Color marks actions with ANSI colours in the table (a terminal).
	Color bool
	// Version is stateguard's version, as SARIF names the tool.
	Version string
}

// Write prints the report in one of Formats.
func (r *Report) Write(w io.Writer, format string, opts WriteOptions) error {
	switch format {
	case "json":
		return r.writeJSON(w)
	case "sarif":
		return r.writeSARIF(w, opts.Version)
	case "junit":
		return r.writeJUnit(w)
	case "github":
		return r.writeGitHub(w)
	case "table", "":
		return r.writeTable(w, opts.Color)
	}
	return fmt.Errorf("unknown output format %q", format)
}

func (r *Report) writeJSON(w io.Writer) error {
	out := *r
	if out.Results == nil {
		out.Results = []Entry{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(out)
}

// actionColors are the ANSI colours of actions in the table, all of one
// length (as is the header's bold): tabwriter counts their bytes as width,
// and equal lengths keep the column aligned.
var actionColors = map[engine.Action]string{
	engine.ActionDeny:   "\x1b[31m",
	engine.ActionWarn:   "\x1b[33m",
	engine.ActionDryRun: "\x1b[36m",
	engine.ActionExempt: "\x1b[90m",
}

const (
	boldColor  = "\x1b[01m"
	resetColor = "\x1b[0m"
)

func (r *Report) writeTable(w io.Writer, color bool) error {
	paint := func(code, s string) string {
		if !color {
			return s
		}
		return code + s + resetColor
	}
	unread := ""
	if len(r.Errors) > 0 {
		unread = fmt.Sprintf("; %s could not be read (see the errors above)", plural(len(r.Errors), "input"))
	}
	if len(r.Results) == 0 {
		if len(r.Errors) > 0 {
			// Never a clean summary when something went unread.
			_, err := fmt.Fprintf(w, "%s could not be read (see the errors above); no violations in the %s read\n", plural(len(r.Errors), "input"), plural(r.Objects, "object"))
			return err
		}
		_, err := fmt.Fprintf(w, "no violations in %d objects\n", r.Objects)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SOURCE\tOBJECT\tRULE\t%s\tMESSAGE\n", paint(boldColor, "ACTION"))
	counts := map[engine.Action]int{}
	for _, e := range r.Results {
		counts[e.Action]++
		message := e.Field + ": " + e.Message
		if e.Action == engine.ActionExempt {
			message = "(" + e.Exemption + ") " + message
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Source, e.Object(), e.Rule, paint(actionColors[e.Action], string(e.Action)), message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d objects: %d deny, %d warn, %d dryrun, %d exempt%s\n", r.Objects,
		counts[engine.ActionDeny], counts[engine.ActionWarn], counts[engine.ActionDryRun], counts[engine.ActionExempt], unread)
	return err
}

// Object names the result's object as "Kind namespace/name".
func (e Entry) Object() string {
	return objectName(e.Kind, e.Namespace, e.Name)
}

func objectName(kind, namespace, name string) string {
	if namespace == "" {
		return kind + " " + name
	}
	return kind + " " + namespace + "/" + name
}

// File is the file of a source: FILE#INDEX without its index.
func File(source string) string {
	if i := strings.LastIndexByte(source, '#'); i >= 0 {
		return source[:i]
	}
	return source
}

// plural prints a count and a noun, with an s unless the count is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
