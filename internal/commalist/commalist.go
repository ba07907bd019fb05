// Package commalist reads comma-separated lists, as flags and annotations write them.
package commalist

import "strings"

// Split splits s at commas, trimming space and dropping blank items.
func Split(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
