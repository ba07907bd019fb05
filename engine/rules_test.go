package engine_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stateguard/stateguard/engine"
)

// TestReadmeRulesTable holds the README's rules table to engine.Rules:
// every rule, in order, with its default action and the kinds it judges.
func TestReadmeRulesTable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\| (deny|warn|dryrun|off) \\| ([A-Za-z, ]+) \\|").FindAllStringSubmatch(string(readme), -1) {
		got = append(got, m[1]+" "+m[2]+" "+m[3])
	}
	for _, r := range engine.Rules {
		want = append(want, r.ID+" "+string(r.DefaultAction)+" "+strings.Join(r.Kinds, ", "))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("README.md's rules table (-engine.Rules +README):\n%s", diff)
	}
}

// TestRulesAreDeclared: each rule has what its declaration promises, and
// every rule ID the engine reports is declared.
func TestRulesAreDeclared(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range engine.Rules {
		if seen[r.ID] {
			t.Errorf("rule %s is declared twice", r.ID)
		}
		seen[r.ID] = true
		if r.DefaultAction != engine.ActionDeny && r.DefaultAction != engine.ActionWarn {
			t.Errorf("rule %s: default action %q", r.ID, r.DefaultAction)
		}
		if len(r.Kinds) == 0 {
			t.Errorf("rule %s judges no kind", r.ID)
		}
	}
	for _, id := range []string{engine.RuleHeadlessService, engine.RuleEmptyDirData, engine.RuleSharedRWOPVC, engine.RuleRWORollingUpdate} {
		if _, ok := engine.LookupRule(id); !ok {
			t.Errorf("rule %s is not in engine.Rules", id)
		}
	}
}
