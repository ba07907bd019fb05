// Package config holds stateguard's configuration file type
// (apiVersion stateguard.io/v1alpha1, kind Config): strict decoding,
// validation that names the bad field, and the documented defaults.
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	APIVersion = "stateguard.io/v1alpha1"
	Kind       = "Config"
)

// Action is what happens to a violation of a rule.
type Action string

const (
	ActionDeny   Action = "deny"
	ActionWarn   Action = "warn"
	ActionDryRun Action = "dryrun"
	ActionOff    Action = "off"
)

// UnmarshalJSON reads YAML 1.1's unquoted off, which arrives as false, as "off".
func (a *Action) UnmarshalJSON(data []byte) error {
	if string(data) == "false" {
		*a = ActionOff
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("must be a string: one of deny, warn, dryrun, off")
	}
	*a = Action(s)
	return nil
}

// Rule IDs, as used in the config file, annotations, messages, metrics and output.
const (
	RuleHeadlessService  = "statefulset-headless-service"
	RuleEmptyDirData     = "statefulset-emptydir-data"
	RuleSharedRWOPVC     = "deployment-shared-rwo-pvc"
	RuleRWORollingUpdate = "deployment-rwo-rolling-update"
)

// RuleIDs lists every rule, in the order the spec presents them.
var RuleIDs = []string{RuleHeadlessService, RuleEmptyDirData, RuleSharedRWOPVC, RuleRWORollingUpdate}

// Config is the configuration file. Zero values mean "use the default";
// Load and Parse return a Config with every default filled in.
type Config struct {
	APIVersion            string   `json:"apiVersion"`
	Kind                  string   `json:"kind"`
	Enforcement           Action   `json:"enforcement,omitempty"`
	AllowObjectExemptions *bool    `json:"allowObjectExemptions,omitempty"`
	Rules                 Rules    `json:"rules,omitempty"`
	Defaults              Defaults `json:"defaults,omitempty"`
}

type Rules struct {
	HeadlessService  Rule         `json:"statefulset-headless-service,omitempty"`
	EmptyDirData     EmptyDirRule `json:"statefulset-emptydir-data,omitempty"`
	SharedRWOPVC     Rule         `json:"deployment-shared-rwo-pvc,omitempty"`
	RWORollingUpdate Rule         `json:"deployment-rwo-rolling-update,omitempty"`
}

type Rule struct {
	Action Action `json:"action,omitempty"`
}

// EmptyDirRule configures statefulset-emptydir-data. A nil list means the
// default list; an empty list means none.
type EmptyDirRule struct {
	Action          Action   `json:"action,omitempty"`
	ScratchPaths    []string `json:"scratchPaths,omitempty"`
	DataPaths       []string `json:"dataPaths,omitempty"`
	DataVolumeNames []string `json:"dataVolumeNames,omitempty"`
}

// Defaults are the values the mutating webhook gives StatefulSets; "" leaves the field alone.
type Defaults struct {
	PodManagementPolicy                  string          `json:"podManagementPolicy,omitempty"`
	PersistentVolumeClaimRetentionPolicy RetentionPolicy `json:"persistentVolumeClaimRetentionPolicy,omitempty"`
}

type RetentionPolicy struct {
	WhenDeleted string `json:"whenDeleted,omitempty"`
	WhenScaled  string `json:"whenScaled,omitempty"`
}

// Documented defaults.
var (
	DefaultScratchPaths    = []string{"/tmp", "/var/tmp", "/run", "/var/run", "/dev/shm"}
	DefaultDataPaths       = []string{"/data", "/var/lib"}
	DefaultDataVolumeNames = []string{"data", "datadir", "storage", "*-data", "data-*", "*-storage", "storage-*", "*-datadir"}
)

// Default returns the configuration used when no file is given.
func Default() *Config {
	c := &Config{APIVersion: APIVersion, Kind: Kind}
	c.setDefaults()
	return c
}

// Action returns the configured action of a rule ID ("" for an unknown ID).
func (c *Config) Action(rule string) Action {
	switch rule {
	case RuleHeadlessService:
		return c.Rules.HeadlessService.Action
	case RuleEmptyDirData:
		return c.Rules.EmptyDirData.Action
	case RuleSharedRWOPVC:
		return c.Rules.SharedRWOPVC.Action
	case RuleRWORollingUpdate:
		return c.Rules.RWORollingUpdate.Action
	}
	return ""
}

func (c *Config) setDefaults() {
	if c.Enforcement == "" {
		c.Enforcement = ActionDeny
	}
	if c.AllowObjectExemptions == nil {
		yes := true
		c.AllowObjectExemptions = &yes
	}
	for _, r := range []*Action{&c.Rules.HeadlessService.Action, &c.Rules.EmptyDirData.Action, &c.Rules.SharedRWOPVC.Action} {
		if *r == "" {
			*r = ActionDeny
		}
	}
	if c.Rules.RWORollingUpdate.Action == "" {
		c.Rules.RWORollingUpdate.Action = ActionWarn
	}
	e := &c.Rules.EmptyDirData
	if e.ScratchPaths == nil {
		e.ScratchPaths = DefaultScratchPaths
	}
	if e.DataPaths == nil {
		e.DataPaths = DefaultDataPaths
	}
	if e.DataVolumeNames == nil {
		e.DataVolumeNames = DefaultDataVolumeNames
	}
}

// Load reads, strictly decodes, validates and defaults the file at path.
// Errors name the file and the field.
func Load(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	return c, nil
}

// Parse strictly decodes one YAML (or JSON) document: unknown and duplicate
// fields are refused with their path. The result is validated and defaulted.
func Parse(data []byte) (*Config, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, err
	}
	c := &Config{}
	strictErrs, err := kjson.UnmarshalStrict(js, c)
	if err != nil {
		return nil, err
	}
	if len(strictErrs) > 0 {
		return nil, errors.Join(strictErrs...)
	}
	if errs := c.validate(); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	c.setDefaults()
	return c, nil
}

func (c *Config) validate() field.ErrorList {
	var errs field.ErrorList
	if c.APIVersion != APIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), c.APIVersion, []string{APIVersion}))
	}
	if c.Kind != Kind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), c.Kind, []string{Kind}))
	}
	errs = append(errs, validateAction(field.NewPath("enforcement"), c.Enforcement, ActionDeny, ActionWarn, ActionDryRun)...)

	rules := field.NewPath("rules")
	ruleActions := []Action{ActionDeny, ActionWarn, ActionDryRun, ActionOff}
	errs = append(errs, validateAction(rules.Child(RuleHeadlessService, "action"), c.Rules.HeadlessService.Action, ruleActions...)...)
	errs = append(errs, validateAction(rules.Child(RuleSharedRWOPVC, "action"), c.Rules.SharedRWOPVC.Action, ruleActions...)...)
	errs = append(errs, validateAction(rules.Child(RuleRWORollingUpdate, "action"), c.Rules.RWORollingUpdate.Action, ruleActions...)...)
	e := rules.Child(RuleEmptyDirData)
	errs = append(errs, validateAction(e.Child("action"), c.Rules.EmptyDirData.Action, ruleActions...)...)
	errs = append(errs, validatePaths(e.Child("scratchPaths"), c.Rules.EmptyDirData.ScratchPaths)...)
	errs = append(errs, validatePaths(e.Child("dataPaths"), c.Rules.EmptyDirData.DataPaths)...)
	for i, name := range c.Rules.EmptyDirData.DataVolumeNames {
		if name == "" || strings.Trim(name, "*") == "" {
			errs = append(errs, field.Invalid(e.Child("dataVolumeNames").Index(i), name, "must contain a character other than '*'"))
		}
	}

	d := field.NewPath("defaults")
	errs = append(errs, ValidatePodManagementPolicy(d.Child("podManagementPolicy"), c.Defaults.PodManagementPolicy)...)
	r := d.Child("persistentVolumeClaimRetentionPolicy")
	errs = append(errs, ValidateRetention(r.Child("whenDeleted"), c.Defaults.PersistentVolumeClaimRetentionPolicy.WhenDeleted)...)
	errs = append(errs, ValidateRetention(r.Child("whenScaled"), c.Defaults.PersistentVolumeClaimRetentionPolicy.WhenScaled)...)
	return errs
}

func validateAction(p *field.Path, a Action, allowed ...Action) field.ErrorList {
	if a == "" {
		return nil
	}
	names := make([]string, len(allowed))
	for i, x := range allowed {
		if a == x {
			return nil
		}
		names[i] = string(x)
	}
	return field.ErrorList{field.NotSupported(p, a, names)}
}

func validatePaths(p *field.Path, paths []string) field.ErrorList {
	var errs field.ErrorList
	for i, s := range paths {
		if !strings.HasPrefix(s, "/") {
			errs = append(errs, field.Invalid(p.Index(i), s, "must be an absolute path"))
		} else if path.Clean(s) == "/" {
			errs = append(errs, field.Invalid(p.Index(i), s, "may not be the root directory"))
		}
	}
	return errs
}

// ValidatePodManagementPolicy accepts "", OrderedReady and Parallel.
// Namespace annotations are checked with it too.
func ValidatePodManagementPolicy(p *field.Path, v string) field.ErrorList {
	return validateEnum(p, v, "OrderedReady", "Parallel")
}

// ValidateRetention accepts "", Retain and Delete.
func ValidateRetention(p *field.Path, v string) field.ErrorList {
	return validateEnum(p, v, "Retain", "Delete")
}

func validateEnum(p *field.Path, v string, allowed ...string) field.ErrorList {
	if v == "" {
		return nil
	}
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(p, v, allowed)}
}
