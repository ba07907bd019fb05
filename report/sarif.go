package report

import (
	"encoding/json"
	"io"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/stateguard/stateguard/engine"
)

// SARIF 2.1.0 (https://docs.oasis-open.org/sarif/sarif/v2.1.0/), the subset
// code-scanning services read: the tool with one rule per rule ID, the
// results with their file and line, and the inputs that could not be read
// as the invocation's notifications.
const (
	sarifSchema  = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
	sarifVersion = "2.1.0"
	// HelpURI is where the rules are documented.
	HelpURI = "https://github.com/stateguard/stateguard#rules"
)

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID                   string             `json:"id"`
	ShortDescription     sarifText          `json:"shortDescription"`
	FullDescription      sarifText          `json:"fullDescription"`
	Help                 sarifText          `json:"help"`
	HelpURI              string             `json:"helpUri"`
	DefaultConfiguration sarifConfiguration `json:"defaultConfiguration"`
}

type sarifConfiguration struct {
	Level string `json:"level"`
}

type sarifInvocation struct {
	ExecutionSuccessful        bool                `json:"executionSuccessful"`
	ToolExecutionNotifications []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations,omitempty"`
}

type sarifResult struct {
	RuleID       string             `json:"ruleId"`
	RuleIndex    int                `json:"ruleIndex"`
	Level        string             `json:"level"`
	Message      sarifText          `json:"message"`
	Locations    []sarifLocation    `json:"locations"`
	Suppressions []sarifSuppression `json:"suppressions,omitempty"`
	Properties   sarifProperties    `json:"properties"`
}

type sarifProperties struct {
	Action engine.Action `json:"action"`
	Object string        `json:"object"`
	Field  string        `json:"field"`
}

type sarifLocation struct {
	PhysicalLocation *sarifPhysicalLocation `json:"physicalLocation,omitempty"`
	LogicalLocations []sarifLogical         `json:"logicalLocations,omitempty"`
}

type sarifPhysicalLocation struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogical struct {
	Name               string `json:"name"`
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

type sarifSuppression struct {
	Kind          string `json:"kind"`
	Justification string `json:"justification"`
}

// sarifLevels are the SARIF levels of the effective actions.
var sarifLevels = map[engine.Action]string{
	engine.ActionDeny:   "error",
	engine.ActionWarn:   "warning",
	engine.ActionDryRun: "note",
	engine.ActionExempt: "note",
	engine.ActionOff:    "none",
}

func (r *Report) writeSARIF(w io.Writer, version string) error {
	driver := sarifDriver{Name: "stateguard", Version: version, InformationURI: "https://github.com/stateguard/stateguard"}
	ruleIndex := map[string]int{}
	for i, rule := range engine.Rules {
		ruleIndex[rule.ID] = i
		driver.Rules = append(driver.Rules, sarifRule{
			ID:                   rule.ID,
			ShortDescription:     sarifText{rule.Summary},
			FullDescription:      sarifText{rule.Summary + " It judges " + strings.Join(rule.Kinds, ", ") + "."},
			Help:                 sarifText{rule.Help},
			HelpURI:              HelpURI,
			DefaultConfiguration: sarifConfiguration{sarifLevels[rule.DefaultAction]},
		})
	}
	run := sarifRun{Tool: sarifTool{driver}, Results: []sarifResult{}}
	invocation := sarifInvocation{ExecutionSuccessful: len(r.Errors) == 0}
	for _, p := range r.Errors {
		invocation.ToolExecutionNotifications = append(invocation.ToolExecutionNotifications, sarifNotification{
			Level: "error", Message: sarifText{p.Message}, Locations: []sarifLocation{{PhysicalLocation: physicalLocation(p.Source, 0)}},
		})
	}
	run.Invocations = []sarifInvocation{invocation}
	for _, e := range r.Results {
		res := sarifResult{
			RuleID: e.Rule, RuleIndex: ruleIndex[e.Rule], Level: sarifLevels[e.Action],
			Message: sarifText{e.Object() + ": " + e.Field + ": " + e.Message},
			Locations: []sarifLocation{{
				PhysicalLocation: physicalLocation(e.Source, e.Line),
				LogicalLocations: []sarifLogical{{Name: e.Name, FullyQualifiedName: e.Object(), Kind: "object"}},
			}},
			Properties: sarifProperties{Action: e.Action, Object: e.Object(), Field: e.Field},
		}
		if e.Action == engine.ActionExempt {
			res.Suppressions = []sarifSuppression{{Kind: "external", Justification: e.Exemption}}
		}
		run.Results = append(run.Results, res)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(sarifLog{Schema: sarifSchema, Version: sarifVersion, Runs: []sarifRun{run}})
}

// physicalLocation points at the file of a source: a relative URI for a
// relative path, as code scanning resolves it against the repository.
func physicalLocation(source string, line int) *sarifPhysicalLocation {
	file := filepath.ToSlash(File(source))
	u := url.URL{Path: file}
	if filepath.IsAbs(File(source)) {
		u.Scheme = "file"
	}
	loc := &sarifPhysicalLocation{ArtifactLocation: sarifArtifact{URI: u.String()}}
	if line > 0 {
		loc.Region = &sarifRegion{StartLine: line}
	}
	return loc
}
