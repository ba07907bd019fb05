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

func TestContains(t *testing.T) {
	for _, tt := range []struct {
		list, name string
		want       bool
	}{
		{"", "data", false},
		{"data", "data", true},
		{"cache, data ,tmp", "data", true},
		{"database", "data", false},
		{"cache,,", "", false},
	} {
		if got := Contains(tt.list, tt.name); got != tt.want {
			t.Errorf("Contains(%q, %q) = %v, want %v", tt.list, tt.name, got, tt.want)
		}
	}
}
