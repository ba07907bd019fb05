// Package config holds stateguard's configuration file type
// (apiVersion stateguard.io/v1alpha1, kind Config): strict decoding,
// validation that names the bad field, and the documented defaults.
package config

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/stateguard/stateguard/engine"
)

const (
	APIVersion = "stateguard.io/v1alpha1"
	Kind       = "Config"
)

// Config is the configuration file. Zero values mean "use the default";
// Load and Parse return a Config with every default filled in.
type Config struct {
	APIVersion  string        `json:"apiVersion"`
	Kind        string        `json:"kind"`
	Enforcement engine.Action `json:"enforcement,omitempty"`
	// AllowObjectExemptions has the annotation stateguard.io/exempt
	// honoured for the ObjectExemptionGrantors (default false).
	AllowObjectExemptions   *bool       `json:"allowObjectExemptions,omitempty"`
	ObjectExemptionGrantors Grantors    `json:"objectExemptionGrantors,omitempty"`
	Exemptions              []Exemption `json:"exemptions,omitempty"`
	// DataDirectories extend the built-in catalogue of where well-known
	// images keep their data: an entry replaces the built-in one of its
	// name, and one without paths removes it.
	DataDirectories []engine.DataDirectory `json:"dataDirectories,omitempty"`
	// Rules configure engine.Rules, by rule ID.
	Rules    map[string]Rule `json:"rules,omitempty"`
	Defaults Defaults        `json:"defaults,omitempty"`
}

// Rule configures one rule: its action, and the options the rule takes
// (engine.Rule.Options). A nil list means the default list; an empty list
// means none.
type Rule struct {
	Action          engine.Action `json:"action,omitempty"`
	ScratchPaths    []string      `json:"scratchPaths,omitempty"`
	DataPaths       []string      `json:"dataPaths,omitempty"`
	DataVolumeNames []string      `json:"dataVolumeNames,omitempty"`
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
func (c *Config) Action(rule string) engine.Action { return c.Rules[rule].Action }

func (c *Config) setDefaults() {
	if c.Enforcement == "" {
		c.Enforcement = engine.ActionDeny
	}
	if c.AllowObjectExemptions == nil {
		no := false
		c.AllowObjectExemptions = &no
	}
	if c.Rules == nil {
		c.Rules = map[string]Rule{}
	}
	for _, r := range engine.Rules {
		rc := c.Rules[r.ID]
		if rc.Action == "" {
			rc.Action = r.DefaultAction
		}
		c.Rules[r.ID] = rc
	}
	e := c.Rules[engine.RuleEmptyDirData]
	if e.ScratchPaths == nil {
		e.ScratchPaths = DefaultScratchPaths
	}
	if e.DataPaths == nil {
		e.DataPaths = DefaultDataPaths
	}
	if e.DataVolumeNames == nil {
		e.DataVolumeNames = DefaultDataVolumeNames
	}
	c.Rules[engine.RuleEmptyDirData] = e
}

// Settings are what an engine of this (validated and defaulted)
// configuration applies.
func (c *Config) Settings() engine.Settings {
	s := engine.Settings{
		Enforcement: c.Enforcement,
		ObjectExemptions: engine.ObjectExemptions{
			Allowed: *c.AllowObjectExemptions,
			Groups:  c.ObjectExemptionGrantors.Groups,
			Users:   c.ObjectExemptionGrantors.users(),
		},
		Exemptions: c.engineExemptions(),
		Actions:    map[string]engine.Action{},
		Defaults: map[string]string{
			engine.FieldPodManagementPolicy: c.Defaults.PodManagementPolicy,
			engine.FieldWhenDeleted:         c.Defaults.PersistentVolumeClaimRetentionPolicy.WhenDeleted,
			engine.FieldWhenScaled:          c.Defaults.PersistentVolumeClaimRetentionPolicy.WhenScaled,
		},
	}
	for id, r := range c.Rules {
		s.Actions[id] = r.Action
	}
	e := c.Rules[engine.RuleEmptyDirData]
	s.ScratchPaths, s.DataPaths, s.DataVolumeNames = e.ScratchPaths, e.DataPaths, e.DataVolumeNames
	s.DataDirectories = c.dataDirectories()
	return s
}

// dataDirectories are the built-in catalogue with the configuration's
// entries in place of those of the same name, and after them.
func (c *Config) dataDirectories() []engine.DataDirectory {
	dirs := engine.BuiltinCatalogue().DataDirectories
	for _, d := range c.DataDirectories {
		if i := slices.IndexFunc(dirs, func(b engine.DataDirectory) bool { return b.Name == d.Name }); i >= 0 {
			dirs[i] = d
		} else {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

func (c *Config) validateDataDirectories() field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("dataDirectories")
	names := map[string]bool{}
	for i, d := range c.DataDirectories {
		p := p.Index(i)
		switch {
		case d.Name == "":
			errs = append(errs, field.Required(p.Child("name"), "replaces the built-in entry of that name, or adds one"))
		case names[d.Name]:
			errs = append(errs, field.Duplicate(p.Child("name"), d.Name))
		}
		names[d.Name] = true
		if len(d.Paths) > 0 && len(d.Images) == 0 {
			errs = append(errs, field.Required(p.Child("images"), "the image repositories that keep their data in paths"))
		}
		errs = append(errs, validatePaths(p.Child("paths"), d.Paths)...)
		errs = append(errs, validateNamePatterns(p.Child("images"), d.Images)...)
		if d.Roles != nil && (len(d.Roles.Env) == 0 || len(d.Roles.Data) == 0) {
			errs = append(errs, field.Required(p.Child("roles"), "env (the variables that list a node's roles) and data (the roles that keep data)"))
		}
	}
	return errs
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
	if unknown := c.unknownRuleFields(); len(unknown) > 0 {
		return nil, errors.Join(unknown...)
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
	errs = append(errs, validateAction(field.NewPath("enforcement"), c.Enforcement, engine.ActionDeny, engine.ActionWarn, engine.ActionDryRun)...)
	errs = append(errs, c.validateRules(field.NewPath("rules"))...)
	errs = append(errs, c.validateExemptions()...)
	errs = append(errs, c.validateDataDirectories()...)

	d := field.NewPath("defaults")
	r := d.Child("persistentVolumeClaimRetentionPolicy")
	errs = append(errs, engine.ValidateDefault(engine.FieldPodManagementPolicy, d.Child("podManagementPolicy"), c.Defaults.PodManagementPolicy)...)
	errs = append(errs, engine.ValidateDefault(engine.FieldWhenDeleted, r.Child("whenDeleted"), c.Defaults.PersistentVolumeClaimRetentionPolicy.WhenDeleted)...)
	errs = append(errs, engine.ValidateDefault(engine.FieldWhenScaled, r.Child("whenScaled"), c.Defaults.PersistentVolumeClaimRetentionPolicy.WhenScaled)...)
	return errs
}

// ruleOptions are the options a rule may take, with their checks.
func (r *Rule) options() []ruleOption {
	return []ruleOption{
		{"scratchPaths", r.ScratchPaths, validatePaths},
		{"dataPaths", r.DataPaths, validatePaths},
		{"dataVolumeNames", r.DataVolumeNames, validateNamePatterns},
	}
}

type ruleOption struct {
	name  string
	value []string // nil when not set
	check func(*field.Path, []string) field.ErrorList
}

// sortedRuleIDs are the configured rule IDs, for errors in a stable order.
func (c *Config) sortedRuleIDs() []string {
	ids := make([]string, 0, len(c.Rules))
	for id := range c.Rules {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// unknownRuleFields refuses rules that engine.Rules does not declare and
// options a rule does not take, in the words of a strict decoding error.
func (c *Config) unknownRuleFields() []error {
	var errs []error
	rules := field.NewPath("rules")
	for _, id := range c.sortedRuleIDs() {
		rule, ok := engine.LookupRule(id)
		if !ok {
			errs = append(errs, fmt.Errorf("unknown field %q", rules.Child(id).String()))
			continue
		}
		rc := c.Rules[id]
		for _, o := range rc.options() {
			if o.value != nil && !slices.Contains(rule.Options, o.name) {
				errs = append(errs, fmt.Errorf("unknown field %q", rules.Child(id, o.name).String()))
			}
		}
	}
	return errs
}

// validateRules checks the actions and options of the rules.
func (c *Config) validateRules(rules *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, id := range c.sortedRuleIDs() {
		rc, p := c.Rules[id], rules.Child(id)
		errs = append(errs, validateAction(p.Child("action"), rc.Action, engine.ActionDeny, engine.ActionWarn, engine.ActionDryRun, engine.ActionOff)...)
		for _, o := range rc.options() {
			if o.value != nil {
				errs = append(errs, o.check(p.Child(o.name), o.value)...)
			}
		}
	}
	return errs
}

func validateAction(p *field.Path, a engine.Action, allowed ...engine.Action) field.ErrorList {
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

func validateNamePatterns(p *field.Path, names []string) field.ErrorList {
	var errs field.ErrorList
	for i, name := range names {
		if name == "" || strings.Trim(name, "*") == "" {
			errs = append(errs, field.Invalid(p.Index(i), name, "must contain a character other than '*'"))
		}
	}
	return errs
}
