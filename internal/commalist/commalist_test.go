package commalist

import (
	"slices"
	"testing"
)

func TestSplit(t *testing.T) {
	for in, want := range map[string][]string{
		"":                  nil,
		" , ,":              nil,
		"a":                 {"a"},
		" kube-system, ,b ": {"kube-system", "b"},
	} {
		if got := Split(in); !slices.Equal(got, want) {
			t.Errorf("Split(%q) = %q, want %q", in, got, want)
		}
	}
}
