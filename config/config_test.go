package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stateguard/stateguard/engine"
)

// specExample is the configuration file of the spec, verbatim.
const specExample = `apiVersion: stateguard.io/v1alpha1
kind: Config
enforcement: deny            # deny | warn | dryrun: caps every rule
allowObjectExemptions: true
rules:
  statefulset-headless-service: {action: deny}
  statefulset-emptydir-data:
    action: deny
    scratchPaths: [/tmp, /var/tmp, /run, /var/run, /dev/shm]
    dataPaths: [/data, /var/lib]
    dataVolumeNames: [data, datadir, storage, "*-data", "data-*", "*-storage", "storage-*", "*-datadir"]
  deployment-shared-rwo-pvc: {action: deny}
  deployment-rwo-rolling-update: {action: warn}
defaults:
  podManagementPolicy: ""     # "", OrderedReady, Parallel
  persistentVolumeClaimRetentionPolicy: {whenDeleted: "", whenScaled: ""}
`

// withRule edits the configuration of one rule.
func withRule(c *Config, id string, edit func(*Rule)) {
	r := c.Rules[id]
	edit(&r)
	c.Rules[id] = r
}

// TestSpecExampleIsTheDefault: the spec's example is the built-in policy,
// but for object exemptions, which are off by default: the annotation
// would let anyone who may edit a workload exempt it.
func TestSpecExampleIsTheDefault(t *testing.T) {
	got, err := Parse([]byte(specExample))
	if err != nil {
		t.Fatal(err)
	}
	if !*got.AllowObjectExemptions {
		t.Error("the spec's example allows object exemptions, but they were parsed as off")
	}
	no := false
	got.AllowObjectExemptions = &no
	if diff := cmp.Diff(Default(), got); diff != "" {
		t.Errorf("the spec's example differs from the built-in defaults (-default +example):\n%s", diff)
	}
}

func TestParse(t *testing.T) {
	const head = "apiVersion: stateguard.io/v1alpha1\nkind: Config\n"
	no := false
	withDefaults := func(edit func(*Config)) *Config {
		c := Default()
		edit(c)
		return c
	}
	tests := []struct {
		name    string
		in      string
		want    *Config
		wantErr string
	}{
		{
			name: "header only gives every default",
			in:   head,
			want: Default(),
		},
		{
			name: "partial rules keep the other defaults",
			in:   head + "rules:\n  deployment-rwo-rolling-update: {action: deny}\n  statefulset-emptydir-data: {dataPaths: [/srv/db]}\n",
			want: withDefaults(func(c *Config) {
				withRule(c, engine.RuleRWORollingUpdate, func(r *Rule) { r.Action = engine.ActionDeny })
				withRule(c, engine.RuleEmptyDirData, func(r *Rule) { r.DataPaths = []string{"/srv/db"} })
			}),
		},
		{
			name: "an empty list means none, not the default",
			in:   head + "rules:\n  statefulset-emptydir-data: {dataVolumeNames: []}\n",
			want: withDefaults(func(c *Config) {
				withRule(c, engine.RuleEmptyDirData, func(r *Rule) { r.DataVolumeNames = []string{} })
			}),
		},
		{
			name: "enforcement, exemptions and defaults",
			in:   head + "enforcement: dryrun\nallowObjectExemptions: false\ndefaults:\n  podManagementPolicy: Parallel\n  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Retain}\n",
			want: withDefaults(func(c *Config) {
				c.Enforcement = engine.ActionDryRun
				c.AllowObjectExemptions = &no
				c.Defaults = Defaults{PodManagementPolicy: "Parallel", PersistentVolumeClaimRetentionPolicy: RetentionPolicy{WhenDeleted: "Delete", WhenScaled: "Retain"}}
			}),
		},
		{
			name: "YAML's unquoted off turns a rule off",
			in:   head + "rules:\n  deployment-rwo-rolling-update: {action: off}\n",
			want: withDefaults(func(c *Config) {
				withRule(c, engine.RuleRWORollingUpdate, func(r *Rule) { r.Action = engine.ActionOff })
			}),
		},
		{
			name:    "a number is no action",
			in:      head + "rules:\n  deployment-rwo-rolling-update: {action: 1}\n",
			wantErr: `must be a string: one of deny, warn, dryrun, off`,
		},
		{
			name:    "unknown top-level field",
			in:      head + "enforcment: warn\n",
			wantErr: `unknown field "enforcment"`,
		},
		{
			name:    "unknown rule",
			in:      head + "rules:\n  statefulset-headless: {action: deny}\n",
			wantErr: `unknown field "rules.statefulset-headless"`,
		},
		{
			name:    "duplicate field",
			in:      head + "enforcement: warn\nenforcement: deny\n",
			wantErr: `key "enforcement" already set in map`,
		},
		{
			name:    "wrong apiVersion and kind",
			in:      "apiVersion: v1\nkind: ConfigMap\n",
			wantErr: `[apiVersion: Unsupported value: "v1": supported values: "stateguard.io/v1alpha1", kind: Unsupported value: "ConfigMap": supported values: "Config"]`,
		},
		{
			name:    "enforcement cannot be off",
			in:      head + "enforcement: off\n",
			wantErr: `enforcement: Unsupported value: "off": supported values: "deny", "warn", "dryrun"`,
		},
		{
			name:    "bad rule action",
			in:      head + "rules:\n  deployment-shared-rwo-pvc: {action: block}\n",
			wantErr: `rules.deployment-shared-rwo-pvc.action: Unsupported value: "block": supported values: "deny", "warn", "dryrun", "off"`,
		},
		{
			name:    "relative and root paths",
			in:      head + "rules:\n  statefulset-emptydir-data: {scratchPaths: [tmp], dataPaths: [/data, /]}\n",
			wantErr: `[rules.statefulset-emptydir-data.scratchPaths[0]: Invalid value: "tmp": must be an absolute path, rules.statefulset-emptydir-data.dataPaths[1]: Invalid value: "/": may not be the root directory]`,
		},
		{
			name:    "a data volume name of stars only",
			in:      head + "rules:\n  statefulset-emptydir-data: {dataVolumeNames: [data, \"**\"]}\n",
			wantErr: `rules.statefulset-emptydir-data.dataVolumeNames[1]: Invalid value: "**": must contain a character other than '*'`,
		},
		{
			name:    "bad defaults",
			in:      head + "defaults:\n  podManagementPolicy: Ordered\n  persistentVolumeClaimRetentionPolicy: {whenScaled: delete}\n",
			wantErr: `[defaults.podManagementPolicy: Unsupported value: "Ordered": supported values: "OrderedReady", "Parallel", defaults.persistentVolumeClaimRetentionPolicy.whenScaled: Unsupported value: "delete": supported values: "Retain", "Delete"]`,
		},
		{
			name: "exemptions name their bad fields",
			in: head + `exemptions:
  - {name: a, rules: [statefulset-headless], namespaces: [shop], kinds: [Pod], reason: x, expires: next week}
  - {name: a, rules: [], reason: " "}
  - {name: "", rules: [all], selector: {matchExpressions: [{key: tier, operator: Near}]}, reason: x}
objectExemptionGrantors: {serviceAccounts: [argocd]}
`,
			wantErr: `[exemptions[0].rules[0]: Unsupported value: "statefulset-headless": supported values: "all", "` + strings.Join(engine.RuleIDs(), `", "`) + `", ` +
				`exemptions[0].kinds[0]: Unsupported value: "Pod": supported values: "StatefulSet", "Deployment", ` +
				`exemptions[0].expires: Invalid value: "next week": must be a date (2027-01-31) or an RFC 3339 time (2027-01-31T12:00:00Z), ` +
				`exemptions[1].name: Duplicate value: "a", exemptions[1].rules: Required value: the rule IDs it exempts from, or "all", ` +
				`exemptions[1]: Required value: namespaces, names or a selector: to turn a rule off everywhere, set its action to off, ` +
				`exemptions[1].reason: Required value: why the workloads are exempt: results, logs and reports show it, ` +
				`exemptions[2].name: Required value: names the exemption in results and logs, ` +
				`exemptions[2].selector: Invalid value: `,
		},
		{
			name:    "a ServiceAccount grantor is NAMESPACE/NAME",
			in:      head + "objectExemptionGrantors: {serviceAccounts: [argocd]}\n",
			wantErr: `objectExemptionGrantors.serviceAccounts[0]: Invalid value: "argocd": must be NAMESPACE/NAME`,
		},
		{
			name:    "wrong type names the field",
			in:      head + "allowObjectExemptions: sometimes\n",
			wantErr: `json: cannot unmarshal string into Go struct field Config.allowObjectExemptions of type bool`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "stateguard.yaml")
	if err := os.WriteFile(file, []byte("apiVersion: stateguard.io/v1alpha1\nkind: Config\nenforcement: block\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(file)
	want := "config " + file + `: enforcement: Unsupported value: "block": supported values: "deny", "warn", "dryrun"`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml: no such file or directory") {
		t.Errorf("error = %v, want the missing file named", err)
	}
}

func TestDataDirectories(t *testing.T) {
	cfg, err := Parse([]byte(`apiVersion: stateguard.io/v1alpha1
kind: Config
dataDirectories:
  - {name: postgresql, images: ["corp/pg"], paths: [/pg]}
  - {name: jenkins}
  - {name: ledger, images: ["corp/ledger"], paths: [/var/ledger]}
`))
	if err != nil {
		t.Fatal(err)
	}
	dirs := cfg.Settings().DataDirectories
	byName := map[string]engine.DataDirectory{}
	for _, d := range dirs {
		byName[d.Name] = d
	}
	if pg := byName["postgresql"]; len(pg.Paths) != 1 || pg.Paths[0] != "/pg" {
		t.Errorf("postgresql %+v: want the configuration's entry in place of the built-in one", pg)
	}
	if j := byName["jenkins"]; len(j.Paths) != 0 {
		t.Errorf("jenkins %+v: want it emptied (removed from the judgement)", j)
	}
	if l := byName["ledger"]; len(l.Paths) != 1 || len(dirs) != len(engine.BuiltinCatalogue().DataDirectories)+1 {
		t.Errorf("ledger %+v, %d entries: want it added", l, len(dirs))
	}
	_, err = Parse([]byte("apiVersion: stateguard.io/v1alpha1\nkind: Config\ndataDirectories: [{name: x, paths: [data]}, {images: [a]}]\n"))
	want := `[dataDirectories[0].images: Required value: the image repositories that keep their data in paths, dataDirectories[0].paths[0]: Invalid value: "data": must be an absolute path, dataDirectories[1].name: Required value: replaces the built-in entry of that name, or adds one]`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}
