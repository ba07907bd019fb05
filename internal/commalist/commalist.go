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

// Contains reports whether Split(list) holds name, without allocating: it
// runs for every volume of every StatefulSet judged.
func Contains(list, name string) bool {
	for list != "" {
		item := list
		if i := strings.IndexByte(list, ','); i >= 0 {
			item, list = list[:i], list[i+1:]
		} else {
			list = ""
		}
		if item = strings.TrimSpace(item); item != "" && item == name {
			return true
		}
	}
	return false
}
