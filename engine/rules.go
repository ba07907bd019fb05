package engine

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
)

// Action is what happens to a violation of a rule.
type Action string

const (
	ActionDeny   Action = "deny"
	ActionWarn   Action = "warn"
	ActionDryRun Action = "dryrun"
	ActionOff    Action = "off"
	// ActionExempt is the effective action of a violation on an object
	// that is exempt from the rule.
	ActionExempt Action = "exempt"
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
	RuleHeadlessService        = "statefulset-headless-service"
	RuleEmptyDirData           = "statefulset-emptydir-data"
	RuleSharedRWOPVC           = "deployment-shared-rwo-pvc"
	RuleRWORollingUpdate       = "deployment-rwo-rolling-update"
	RuleStatefulSetSharedClaim = "statefulset-shared-rwo-pvc"
	RuleDeploymentEmptyDirData = "deployment-emptydir-data"
	RuleDataDirUnmounted       = "data-directory-unmounted"
)

// Rule is one of stateguard's rules. Rules is the one place a rule is
// declared: the configuration file's rules section, its defaults and its
// validation follow it, and tests hold the chart's values schema and the
// README's rules table to it.
type Rule struct {
	ID            string
	DefaultAction Action
	// Kinds are the kinds of the writes the rule judges.
	Kinds []string
	// Options are the rule's settings in the configuration file besides action.
	Options []string
	// Summary says in one sentence what the rule refuses; Help how to
	// comply. Reports that list rules (SARIF) print them.
	Summary, Help string

	// The following judge an object; a rule of two kinds has both.
	// statefulSet judges a StatefulSet; update says it replaces a stored
	// one, whose spec.serviceName can no longer change.
	statefulSet func(e *Engine, ctx context.Context, sts *appsv1.StatefulSet, update bool, lk Lookup) ([]violation, error)
	// deployment judges a Deployment that may run up to b replicas. A
	// rule that depends on the bound alone (onRescale) is judged again
	// when an HPA or a scale request changes it.
	deployment func(e *Engine, ctx context.Context, dep *appsv1.Deployment, b bound, lk Lookup) ([]violation, error)
	onRescale  bool
}

// Rules are stateguard's rules, in the order the spec presents them.
var Rules = []Rule{
	{
		ID: RuleHeadlessService, DefaultAction: ActionDeny, Kinds: []string{"StatefulSet"},
		Summary:     "A StatefulSet needs a headless Service that selects its Pods, or its Pods get no stable DNS names.",
		Help:        "Set spec.serviceName to a Service with clusterIP: None in the same namespace whose selector matches spec.template.metadata.labels.",
		statefulSet: headlessService,
	},
	{
		ID: RuleEmptyDirData, DefaultAction: ActionDeny, Kinds: []string{"StatefulSet"},
		Summary:     "A StatefulSet keeps data on an emptyDir or ephemeral volume, which is lost when its Pod is deleted.",
		Help:        "Move the volume to spec.volumeClaimTemplates; if it only holds scratch data, name it in the annotation stateguard.io/scratch-volumes.",
		Options:     []string{"scratchPaths", "dataPaths", "dataVolumeNames"},
		statefulSet: (*Engine).emptyDirData,
	},
	{
		ID: RuleStatefulSetSharedClaim, DefaultAction: ActionDeny, Kinds: []string{"StatefulSet"},
		Summary:     "Every replica of a StatefulSet mounts the same single-writer PersistentVolumeClaim.",
		Help:        "Give each replica its own claim from spec.volumeClaimTemplates, or run one replica.",
		statefulSet: statefulSetSharedClaims,
	},
	{
		ID: RuleSharedRWOPVC, DefaultAction: ActionDeny, Kinds: []string{"Deployment", "Scale", "HorizontalPodAutoscaler"},
		Summary:    "A Deployment that may run more than one replica mounts a single-writer (ReadWriteOnce) PersistentVolumeClaim.",
		Help:       "Run one replica (and cap HPAs at 1), use a ReadWriteMany claim, or run the workload as a StatefulSet with volumeClaimTemplates.",
		deployment: sharedClaims, onRescale: true,
	},
	{
		ID: RuleRWORollingUpdate, DefaultAction: ActionWarn, Kinds: []string{"Deployment"},
		Summary:    "A rolling update of a Deployment over a single-writer claim stalls: the new Pod waits for the volume the old one holds.",
		Help:       "Set strategy: {type: Recreate}, or rollingUpdate: {maxSurge: 0, maxUnavailable: 1}.",
		deployment: rollingUpdate,
	},
	{
		// Judged with the options of statefulset-emptydir-data.
		ID: RuleDeploymentEmptyDirData, DefaultAction: ActionWarn, Kinds: []string{"Deployment"},
		Summary:    "A Deployment keeps data on an emptyDir or ephemeral volume, lost at every rollout, eviction or node drain.",
		Help:       "Mount a PersistentVolumeClaim there, or run the workload as a StatefulSet with volumeClaimTemplates; name scratch volumes in stateguard.io/scratch-volumes.",
		deployment: deploymentEmptyDirData,
	},
	{
		// Two rules, one ID: a StatefulSet's and a Deployment's containers.
		ID: RuleDataDirUnmounted, DefaultAction: ActionWarn, Kinds: []string{"StatefulSet", "Deployment"},
		Summary: "A container of a well-known stateful image has no volume at its data directory, so its data lives in the container's writable layer.",
		Help:    "Mount a persistent volume at the data directory the message names.",
		statefulSet: func(e *Engine, _ context.Context, sts *appsv1.StatefulSet, _ bool, _ Lookup) ([]violation, error) {
			return e.dataDirectoryUnmounted("StatefulSet", &sts.Spec.Template.Spec), nil
		},
		deployment: func(e *Engine, _ context.Context, dep *appsv1.Deployment, _ bound, _ Lookup) ([]violation, error) {
			return e.dataDirectoryUnmounted("Deployment", &dep.Spec.Template.Spec), nil
		},
	},
}

// LookupRule finds a rule by ID.
func LookupRule(id string) (Rule, bool) {
	for _, r := range Rules {
		if r.ID == id {
			return r, true
		}
	}
	return Rule{}, false
}

// RuleIDs lists the IDs of Rules, in order.
func RuleIDs() []string {
	ids := make([]string, len(Rules))
	for i, r := range Rules {
		ids[i] = r.ID
	}
	return ids
}

// Settings are what an engine applies, as a validated configuration file
// sets them (config.Config.Settings).
type Settings struct {
	Enforcement Action
	// ObjectExemptions say whether, and for whom, the annotation
	// stateguard.io/exempt is honoured; Exemptions are the policy's.
	ObjectExemptions ObjectExemptions
	Exemptions       []Exemption
	// Actions holds the action of every rule, by ID.
	Actions map[string]Action
	// The options of statefulset-emptydir-data.
	ScratchPaths, DataPaths, DataVolumeNames []string
	// DataDirectories say where well-known images keep their data: the
	// built-in catalogue when nil.
	DataDirectories []DataDirectory
	// Defaults are the values the StatefulSet defaults set, by the names of
	// Defaultables; "" leaves a field alone.
	Defaults map[string]string
}
