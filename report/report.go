// Package report prints engine results the way `stateguard check` and
// `stateguard audit` show them, and derives their exit status.
package report

import (
	"encoding/json"
	"fmt"
	"io"
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
	// Exemption says what exempts an exempt result: a policy exemption
	// and its reason, or the object's annotation.
	Exemption string `json:"exemption,omitempty"`
	// Intended is the action enforcing would give a dryrun result.
	Intended engine.Action `json:"-"`
}

// Report is the printed outcome of judging a set of objects.
type Report struct {
	Results []Entry `json:"results"`
	// Objects counts the objects judged, for the summary line.
	Objects int `json:"-"`
}

// Add appends the results of one object.
func (r *Report) Add(source string, results []engine.Result) {
	for _, res := range results {
		r.Results = append(r.Results, Entry{
			Rule: res.Rule, Action: res.Action, Kind: res.Kind, Namespace: res.Namespace, Name: res.Name,
			Field: res.Field.String(), Message: res.Message, Source: source, Intended: res.Intended, Exemption: res.Exemption,
		})
	}
}

// ExitCode is ExitDenied when any result is at deny, else ExitOK.
func (r *Report) ExitCode() int {
	for _, e := range r.Results {
		if e.Action == engine.ActionDeny {
			return ExitDenied
		}
	}
	return ExitOK
}

// Write prints the report as "table" or "json".
func (r *Report) Write(w io.Writer, format string) error {
	if format == "json" {
		return r.writeJSON(w)
	}
	return r.writeTable(w)
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

func (r *Report) writeTable(w io.Writer) error {
	if len(r.Results) == 0 {
		_, err := fmt.Fprintf(w, "no violations in %d objects\n", r.Objects)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tOBJECT\tRULE\tACTION\tMESSAGE")
	counts := map[engine.Action]int{}
	for _, e := range r.Results {
		counts[e.Action]++
		object := e.Kind + " " + e.Name
		if e.Namespace != "" {
			object = e.Kind + " " + e.Namespace + "/" + e.Name
		}
		message := e.Field + ": " + e.Message
		if e.Action == engine.ActionExempt {
			message = "(" + e.Exemption + ") " + message
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Source, object, e.Rule, e.Action, message)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d objects: %d deny, %d warn, %d dryrun, %d exempt\n", r.Objects,
		counts[engine.ActionDeny], counts[engine.ActionWarn], counts[engine.ActionDryRun], counts[engine.ActionExempt])
	return err
}
