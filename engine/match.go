package engine

import (
	"path"
	"strings"
)

func cleanPaths(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = path.Clean(p)
	}
	return out
}

// underAny returns the first of bases that p equals or lies under, matching
// whole segments from the root: "/database" is not under "/data".
// path.Clean does not allocate for a path that is already clean.
func underAny(p string, bases []string) (string, bool) {
	p = path.Clean(p)
	for _, b := range bases {
		if p == b || (strings.HasPrefix(p, b) && p[len(b)] == '/') {
			return b, true
		}
	}
	return "", false
}

// namePattern is a whole-name pattern in which '*' stands for any run of characters.
type namePattern struct {
	source string
	parts  []string // the literal text between the stars
}

func compileNamePattern(p string) namePattern {
	return namePattern{source: p, parts: strings.Split(p, "*")}
}

func (n namePattern) match(name string) bool {
	if len(n.parts) == 1 {
		return name == n.parts[0]
	}
	first, last := n.parts[0], n.parts[len(n.parts)-1]
	if len(name) < len(first)+len(last) || !strings.HasPrefix(name, first) || !strings.HasSuffix(name, last) {
		return false
	}
	rest := name[len(first) : len(name)-len(last)]
	for _, part := range n.parts[1 : len(n.parts)-1] {
		i := strings.Index(rest, part)
		if i < 0 {
			return false
		}
		rest = rest[i+len(part):]
	}
	return true
}
