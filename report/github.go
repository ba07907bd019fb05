package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/stateguard/stateguard/engine"
)

// githubCommands are the GitHub Actions workflow commands that annotate a
// file with a result of each action.
var githubCommands = map[engine.Action]string{
	engine.ActionDeny:   "error",
	engine.ActionWarn:   "warning",
	engine.ActionDryRun: "notice",
	engine.ActionExempt: "notice",
}

// writeGitHub prints one workflow command per result and per unreadable
// input: GitHub Actions shows them as annotations on the files' lines.
func (r *Report) writeGitHub(w io.Writer) error {
	for _, p := range r.Errors {
		fmt.Fprintf(w, "::error file=%s,title=%s::%s\n", githubProperty(File(p.Source)), githubProperty("stateguard: unreadable input"), githubData(p.Message))
	}
	counts := map[engine.Action]int{}
	for _, e := range r.Results {
		counts[e.Action]++
		command := githubCommands[e.Action]
		if r.Fails(e) {
			command = "error"
		}
		message := e.Object() + ": " + e.Field + ": " + e.Message
		if e.Action == engine.ActionExempt {
			message = "(exempt: " + e.Exemption + ") " + message
		}
		fmt.Fprintf(w, "::%s file=%s,line=%d,title=%s::%s\n", command, githubProperty(File(e.Source)), max(e.Line, 1),
			githubProperty("stateguard "+e.Rule+" ("+string(e.Action)+")"), githubData(message))
	}
	_, err := fmt.Fprintf(w, "stateguard: %d objects: %d deny, %d warn, %d dryrun, %d exempt; %d unreadable inputs\n", r.Objects,
		counts[engine.ActionDeny], counts[engine.ActionWarn], counts[engine.ActionDryRun], counts[engine.ActionExempt], len(r.Errors))
	return err
}

// githubData escapes a workflow command's message.
var githubData = strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace

// githubProperty escapes a workflow command's property value.
var githubProperty = strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace
