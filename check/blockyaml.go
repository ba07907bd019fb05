package check

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// yamlToJSON converts one YAML document to JSON as kubectl does
// (sigs.k8s.io/yaml, whose YAML 1.1 typing of plain scalars it keeps).
// Most manifests are plain block YAML, which blockToJSON converts in one
// pass over the lines, without building a tree of interfaces and
// encoding it again: that was two thirds of `check`'s time. Whatever it
// does not take on, sigs.k8s.io/yaml converts, errors included.
// The fast path also returns the document's apiVersion and kind when it
// knows them (nil otherwise: then they are read from the JSON).
func yamlToJSON(doc []byte) ([]byte, *typeMeta, error) {
	if out, tm, ok := blockToJSON(doc); ok {
		return out, tm, nil
	}
	out, err := yaml.YAMLToJSON(doc)
	return out, nil, err
}

// blockToJSON converts a document made of block mappings and sequences,
// one-line plain and quoted scalars, literal block scalars (| and |-) and
// one-line flow collections. It reports false on anything else (anchors,
// aliases, tags, folded or multi-line scalars, duplicate keys, keys that
// are not strings or integers, tabs where YAML refuses them, bytes outside
// printable ASCII) and on anything it finds invalid: those are
// sigs.k8s.io/yaml's to convert or refuse.
//
// It returns the apiVersion and kind of a top-level mapping whose values
// for them, if any, are strings, and which has no items (a List's items
// are read from the JSON); nil for any other document.
func blockToJSON(doc []byte) ([]byte, *typeMeta, bool) {
	for _, c := range doc {
		if (c < ' ' && c != '\n' && c != '\t') || c >= 0x7f {
			return nil, nil, false
		}
	}
	b := &blockConverter{lines: bytes.Split(doc, []byte("\n")), out: make([]byte, 0, len(doc)+len(doc)/2)}
	indent, ok := b.next()
	if !ok {
		return nil, nil, false // nothing but comments: "null", left to the slow path
	}
	text := b.lines[b.i][indent:]
	_, _, topMapping := splitKey(text)
	if !isEntry(text) && topMapping {
		b.top = &typeMeta{}
	}
	if !b.block(indent, text) {
		return nil, nil, false
	}
	if _, more := b.next(); more || b.failed {
		return nil, nil, false
	}
	return b.out, b.top, true
}

type blockConverter struct {
	lines  [][]byte
	i      int // the line being converted
	out    []byte
	failed bool
	depth  int // of the block mapping being converted, 1 for the top
	// top is the apiVersion and kind of the top-level mapping, nil once
	// one of them is no string or it has items.
	top *typeMeta
	// str is the string the last one-line value was, if it was one.
	str []byte
}

// next moves to the next line of content from the current one, and
// returns its indentation; false at the end of the document.
func (b *blockConverter) next() (int, bool) {
	for ; b.i < len(b.lines); b.i++ {
		line := b.lines[b.i]
		indent := 0
		for indent < len(line) && line[indent] == ' ' {
			indent++
		}
		if indent == len(line) {
			continue
		}
		switch line[indent] {
		case '#':
			continue
		case '\t':
			b.failed = true // a tab where indentation is measured, even on a blank line
			return 0, false
		}
		if indent == 0 && isMarker(line) {
			b.failed = true
			return 0, false
		}
		return indent, true
	}
	return 0, false
}

// isMarker says whether a line starts with a marker of a document's start
// ("---") or end ("...").
func isMarker(line []byte) bool {
	return (bytes.HasPrefix(line, []byte("---")) || bytes.HasPrefix(line, []byte("..."))) &&
		(len(line) == 3 || line[3] == ' ' || line[3] == '\t')
}

// advance moves past the current line to the next line of content, and
// returns its indentation; -1 at the end of the document.
func (b *blockConverter) advance() int {
	b.i++
	indent, ok := b.next()
	if !ok {
		return -1
	}
	return indent
}

// block converts the block node whose first line is text, at column
// indent: a sequence, a mapping, or nothing else.
func (b *blockConverter) block(indent int, text []byte) bool {
	if isEntry(text) {
		return b.sequence(indent)
	}
	if _, _, ok := splitKey(text); ok {
		return b.mapping(indent)
	}
	return false
}

// isEntry says whether text starts a sequence entry ("- " or "-").
func isEntry(text []byte) bool {
	return len(text) > 0 && text[0] == '-' && (len(text) == 1 || text[1] == ' ')
}

// mapping converts the block mapping whose keys are at column indent,
// from the current line.
func (b *blockConverter) mapping(indent int) bool {
	b.out = append(b.out, '{')
	b.depth++
	defer func() { b.depth-- }()
	var keys keySet
	for {
		text := b.lines[b.i][indent:]
		key, rest, ok := splitKey(text)
		if !ok {
			return false
		}
		name, ok := keyName(key)
		if !ok {
			return false
		}
		if !keys.add(name) {
			return false
		}
		if keys.len() > 1 {
			b.out = append(b.out, ',')
		}
		b.out = appendJSONString(b.out, name)
		b.out = append(b.out, ':')
		var next int
		var str []byte // the value, if a one-line string
		if value := trimComment(rest); len(value) > 0 {
			b.str = nil
			if !b.inline(value, indent) {
				return false
			}
			str = b.str
			next = b.advance()
		} else {
			// The value is on the lines below: more indented, or a
			// sequence at the key's own column.
			next = b.advance()
			switch {
			case next > indent:
				if !b.block(next, b.lines[b.i][next:]) {
					return false
				}
				next = b.current()
			case next == indent && isEntry(b.lines[b.i][next:]):
				if !b.sequence(indent) {
					return false
				}
				next = b.current()
			default:
				b.out = append(b.out, "null"...)
			}
		}
		if b.depth == 1 && b.top != nil {
			b.noteTop(name, str)
		}
		switch {
		case b.failed || next > indent:
			return false
		case next < indent:
			b.out = append(b.out, '}')
			return true
		}
	}
}

// noteTop notes the top-level key name and its value, str if it is a
// one-line string.
func (b *blockConverter) noteTop(name, str []byte) {
	switch string(name) {
	case "apiVersion", "kind":
		if str == nil {
			b.top = nil
		} else if name[0] == 'k' {
			b.top.Kind = string(str)
		} else {
			b.top.APIVersion = string(str)
		}
	case "items":
		b.top = nil
	}
}

// current is the indentation of the current line, -1 at the end.
func (b *blockConverter) current() int {
	indent, ok := b.next()
	if !ok {
		return -1
	}
	return indent
}

// sequence converts the block sequence whose entries are at column
// indent, from the current line.
func (b *blockConverter) sequence(indent int) bool {
	b.out = append(b.out, '[')
	for n := 0; ; n++ {
		text := b.lines[b.i][indent:]
		if !isEntry(text) {
			// The key after a sequence at its key's column.
			b.out = append(b.out, ']')
			return true
		}
		if n > 0 {
			b.out = append(b.out, ',')
		}
		col := indent + 1
		for col < len(b.lines[b.i]) && b.lines[b.i][col] == ' ' {
			col++
		}
		item := trimComment(b.lines[b.i][col:])
		var next int
		switch {
		case len(item) == 0:
			next = b.advance()
			if next > indent {
				if !b.block(next, b.lines[b.i][next:]) {
					return false
				}
				next = b.current()
			} else {
				b.out = append(b.out, "null"...)
			}
		case isEntry(item):
			if !b.sequence(col) {
				return false
			}
			next = b.current()
		default:
			if _, _, ok := splitKey(item); ok {
				if !b.mapping(col) {
					return false
				}
				next = b.current()
			} else {
				if !b.inline(item, indent) {
					return false
				}
				next = b.advance()
			}
		}
		switch {
		case b.failed || next > indent:
			return false
		case next < indent:
			b.out = append(b.out, ']')
			return true
		}
	}
}

// splitKey splits "key: rest" (or "key:" at the end of the line) into
// the key and what follows its colon; false when text is no key.
func splitKey(text []byte) (key, rest []byte, ok bool) {
	if len(text) == 0 {
		return nil, nil, false
	}
	if q := text[0]; q == '"' || q == '\'' {
		end := closingQuote(text)
		if end < 0 || end > maxSimpleKey || end+1 >= len(text) || text[end+1] != ':' || (end+2 < len(text) && text[end+2] != ' ') {
			return nil, nil, false
		}
		return text[:end+1], text[end+2:], true
	}
	if isEntry(text) || !plainStart(text) {
		return nil, nil, false
	}
	for i := 0; i < len(text); i++ {
		switch {
		case i > maxSimpleKey:
			return nil, nil, false
		case text[i] == ':' && (i+1 == len(text) || text[i+1] == ' '):
			return bytes.TrimRight(text[:i], " "), text[i+1:], true
		case text[i] == '#' && i > 0 && text[i-1] == ' ':
			return nil, nil, false
		}
	}
	return nil, nil, false
}

// maxSimpleKey is below the length YAML parsers allow a key written
// without "?" (1,024 characters).
const maxSimpleKey = 1000

// keyName is the JSON name of a mapping key: a string, or an integer
// written in decimal, as sigs.k8s.io/yaml names them; false for any
// other (booleans, null, floats, "<<"), which it names its own way.
func keyName(key []byte) ([]byte, bool) {
	if len(key) > maxSimpleKey {
		return nil, false
	}
	if key[0] == '"' || key[0] == '\'' {
		return unquote(key)
	}
	if bytes.IndexByte(key, '\t') >= 0 {
		return nil, false
	}
	switch value, kind := resolvePlain(key); kind {
	case kindString:
		return key, true
	case kindInt:
		return value, true
	}
	return nil, false
}

// keySet is the keys of one mapping: a key twice would be the last one
// in YAML, and both merged in a JSON decoder's struct.
type keySet struct {
	keys [][]byte
	many map[string]bool // past a few keys
}

// add adds key, and reports false if it was there.
func (k *keySet) add(key []byte) bool {
	if k.many != nil {
		if k.many[string(key)] {
			return false
		}
		k.many[string(key)] = true
		return true
	}
	for _, seen := range k.keys {
		if bytes.Equal(seen, key) {
			return false
		}
	}
	k.keys = append(k.keys, key)
	if len(k.keys) > 32 {
		k.many = map[string]bool{}
		for _, seen := range k.keys {
			k.many[string(seen)] = true
		}
	}
	return true
}

func (k *keySet) len() int { return max(len(k.keys), len(k.many)) }

// inline converts the value that follows a key or an entry's dash on its
// line (without its comment); parent is the column of the mapping or
// sequence it belongs to.
func (b *blockConverter) inline(value []byte, parent int) bool {
	switch value[0] {
	case '"', '\'':
		end := closingQuote(value)
		if end != len(value)-1 {
			return false
		}
		s, ok := unquote(value)
		if !ok {
			return false
		}
		b.out = appendJSONString(b.out, s)
		b.str = s
		return true
	case '|':
		return b.literal(value, parent)
	case '[', '{':
		rest, ok := b.flow(value)
		return ok && len(rest) == 0
	}
	if !plainStart(value) || isEntry(value) || bytes.Contains(value, []byte(": ")) || value[len(value)-1] == ':' || bytes.IndexByte(value, '\t') >= 0 {
		return false
	}
	switch json, kind := resolvePlain(value); kind {
	case kindString:
		b.out = appendJSONString(b.out, value)
		b.str = value
	case kindSlow:
		return false
	default:
		b.out = append(b.out, json...)
	}
	return true
}

// flow converts the flow collection text starts with, which must end on
// the same line, and returns the text after it. Its scalars are one-line
// plain or quoted ones; a mapping's keys are followed by ": " (or ":"
// after a quoted key), and its sequences hold no single-pair mappings.
func (b *blockConverter) flow(text []byte) ([]byte, bool) {
	open, end := text[0], byte(']')
	if open == '{' {
		end = '}'
	}
	b.out = append(b.out, open)
	text = skipSpaces(text[1:])
	var keys keySet
	for n := 0; ; n++ {
		if len(text) > 0 && text[0] == end && n == 0 {
			b.out = append(b.out, end)
			return text[1:], true
		}
		if n > 0 {
			b.out = append(b.out, ',')
		}
		var ok bool
		if open == '{' {
			var key []byte
			if key, text, ok = flowScalar(text); !ok || len(text) == 0 || text[0] != ':' {
				return nil, false
			}
			name, ok := keyName(key)
			if !ok || !keys.add(name) || (key[0] != '"' && key[0] != '\'' && (len(text) < 2 || text[1] != ' ')) {
				return nil, false
			}
			b.out = appendJSONString(b.out, name)
			b.out = append(b.out, ':')
			text = skipSpaces(text[1:])
		}
		if text, ok = b.flowValue(text); !ok {
			return nil, false
		}
		text = skipSpaces(text)
		switch {
		case len(text) > 0 && text[0] == end:
			b.out = append(b.out, end)
			return text[1:], true
		case len(text) > 1 && text[0] == ',' && text[1] == ' ':
			text = skipSpaces(text[1:])
		default:
			return nil, false // a trailing comma, a single-pair mapping, the line's end
		}
	}
}

// flowValue converts one value in a flow collection.
func (b *blockConverter) flowValue(text []byte) ([]byte, bool) {
	if len(text) == 0 {
		return nil, false
	}
	if text[0] == '[' || text[0] == '{' {
		return b.flow(text)
	}
	scalar, rest, ok := flowScalar(text)
	if !ok || (len(rest) > 0 && rest[0] == ':') {
		return nil, false
	}
	if scalar[0] == '"' || scalar[0] == '\'' {
		s, ok := unquote(scalar)
		b.out = appendJSONString(b.out, s)
		return rest, ok
	}
	switch json, kind := resolvePlain(scalar); kind {
	case kindString:
		b.out = appendJSONString(b.out, scalar)
	case kindSlow:
		return nil, false
	default:
		b.out = append(b.out, json...)
	}
	return rest, true
}

// flowScalar splits a quoted or plain scalar in a flow collection from
// the text after it (spaces skipped).
func flowScalar(text []byte) (scalar, rest []byte, ok bool) {
	if len(text) == 0 {
		return nil, nil, false
	}
	if text[0] == '"' || text[0] == '\'' {
		end := closingQuote(text)
		if end < 0 {
			return nil, nil, false
		}
		return text[:end+1], skipSpaces(text[end+1:]), true
	}
	if !plainStart(text) || isEntry(text) {
		return nil, nil, false
	}
	i := 0
	for ; i < len(text); i++ {
		c := text[i]
		if c == ',' || c == '[' || c == ']' || c == '{' || c == '}' || (c == ':' && (i+1 == len(text) || text[i+1] == ' ')) {
			break
		}
		if c == '?' || c == '\t' || (c == '#' && text[i-1] == ' ') {
			return nil, nil, false
		}
	}
	scalar = bytes.TrimRight(text[:i], " ")
	if len(scalar) == 0 || scalar[len(scalar)-1] == ':' {
		return nil, nil, false
	}
	return scalar, text[i:], true
}

func skipSpaces(text []byte) []byte { return text[leadingSpaces(text):] }

// plainStart says whether text may start a plain scalar: not with an
// indicator, save "-" before a non-space (a negative number) and the
// others YAML allows only there.
func plainStart(text []byte) bool {
	switch text[0] {
	case '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`':
		return false
	}
	return true
}

// literal converts a literal block scalar whose header is value ("|" or
// "|-") from the lines after the current one, which must be indented more
// than parent, and leaves the current line on its last line of content.
func (b *blockConverter) literal(header []byte, parent int) bool {
	if string(header) != "|" && string(header) != "|-" {
		return false // keep chomping, an indentation indicator, text after the header
	}
	// The block's indentation is that of its first line with content;
	// blank lines before it may not be longer.
	indent, first, last := -1, b.i+1, -1
	for j := first; j < len(b.lines); j++ {
		line := b.lines[j]
		n := leadingSpaces(line)
		if n == len(line) { // blank
			if indent < 0 && n > 0 {
				return false
			}
			if indent >= 0 && n > indent {
				return false // spaces as content: left to the parser
			}
			continue
		}
		if indent < 0 {
			if n <= parent || line[n] == '\t' {
				return false // an empty block scalar, or a tab where its indentation is measured
			}
			indent = n
		}
		if n < indent {
			break
		}
		last = j
	}
	if last < 0 || last == len(b.lines)-1 {
		return false // no content, or no line break after the last line
	}
	var text []byte
	for j := first; j <= last; j++ {
		if line := b.lines[j]; len(line) > indent {
			text = append(text, line[indent:]...)
		}
		text = append(text, '\n')
	}
	if header[len(header)-1] == '-' {
		text = text[:len(text)-1]
	}
	b.out = appendJSONString(b.out, text)
	b.i = last
	return true
}

func leadingSpaces(line []byte) int {
	n := 0
	for n < len(line) && line[n] == ' ' {
		n++
	}
	return n
}

// trimComment drops a comment (" #" onwards) and trailing spaces from
// the rest of a line: a quoted scalar's closing quote comes first.
func trimComment(text []byte) []byte {
	start := 0
	for start < len(text) && text[start] == ' ' {
		start++
	}
	text = text[start:]
	from := 0
	if len(text) > 0 && (text[0] == '"' || text[0] == '\'') {
		if end := closingQuote(text); end > 0 {
			from = end + 1
		}
	}
	if len(text) > 0 && text[0] == '#' {
		return nil
	}
	if i := bytes.Index(text[from:], []byte(" #")); i >= 0 {
		text = text[:from+i]
	}
	return bytes.TrimRight(text, " ") // a tab is left for the caller to refuse
}

// closingQuote is the index of the quote that closes the one-line quoted
// scalar text starts with, -1 if none does.
func closingQuote(text []byte) int {
	q := text[0]
	for i := 1; i < len(text); i++ {
		switch {
		case q == '"' && text[i] == '\\':
			i++
		case text[i] == q && q == '\'' && i+1 < len(text) && text[i+1] == '\'':
			i++
		case text[i] == q:
			return i
		}
	}
	return -1
}

// unquote is the string a one-line quoted scalar stands for; false on an
// escape it does not take on.
func unquote(quoted []byte) ([]byte, bool) {
	inner := quoted[1 : len(quoted)-1]
	if quoted[0] == '\'' {
		return bytes.ReplaceAll(inner, []byte("''"), []byte("'")), true
	}
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, true
	}
	s := make([]byte, 0, len(inner))
	for i := 0; i < len(inner); i++ {
		if inner[i] != '\\' {
			s = append(s, inner[i])
			continue
		}
		i++
		if i == len(inner) {
			return nil, false
		}
		switch inner[i] {
		case '\\', '"':
			s = append(s, inner[i])
		case 'n':
			s = append(s, '\n')
		case 't':
			s = append(s, '\t')
		case 'r':
			s = append(s, '\r')
		default:
			return nil, false
		}
	}
	return s, true
}

// appendJSONString appends s, which holds no byte outside ASCII, as a
// JSON string.
func appendJSONString(out, s []byte) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
		case c == '\n':
			out = append(out, '\\', 'n')
		case c == '\t':
			out = append(out, '\\', 't')
		case c < ' ':
			out = append(out, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			out = append(out, c)
		}
	}
	return append(out, '"')
}

var yamlFloat = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// The forms of timestamp that go.yaml.in/yaml/v2 recognises; it hands
// them on as the string written.
var yamlTimestamps = []string{"2006-1-2T15:4:5.999999999Z07:00", "2006-1-2t15:4:5.999999999Z07:00", "2006-1-2 15:4:5.999999999", "2006-1-2"}

// The types a plain scalar resolves to, as far as JSON tells them apart.
type scalarKind int

const (
	kindString scalarKind = iota
	kindInt
	kindOther // boolean, null, float
	kindSlow  // left to the slow path: infinities, NaN, the merge key
)

// resolvePlain types a plain scalar as go.yaml.in/yaml/v2 does when it
// decodes into an interface, and returns its JSON unless it is a string.
func resolvePlain(scalar []byte) ([]byte, scalarKind) {
	switch string(scalar) {
	case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON":
		return []byte("true"), kindOther
	case "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF":
		return []byte("false"), kindOther
	case "~", "null", "Null", "NULL":
		return []byte("null"), kindOther
	case ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", "<<":
		return nil, kindSlow // infinities, NaN and the merge key
	}
	// Only a scalar that starts with a digit, a sign or a dot, made of
	// what numbers and timestamps are made of, may be one.
	if c := scalar[0]; !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
		return nil, kindString
	}
	for _, c := range scalar {
		if !numeric[c] {
			return nil, kindString
		}
	}
	s := string(scalar)
	if s[0] == '.' {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return floatJSON(f)
		}
		return nil, kindString
	}
	if isTimestamp(s) {
		return nil, kindString // handed on as written
	}
	plain := strings.ReplaceAll(s, "_", "")
	if i, err := strconv.ParseInt(plain, 0, 64); err == nil {
		return strconv.AppendInt(nil, i, 10), kindInt
	}
	if _, err := strconv.ParseUint(plain, 0, 64); err == nil {
		return nil, kindSlow // a uint64, which no key may be
	}
	if yamlFloat.MatchString(plain) {
		if f, err := strconv.ParseFloat(plain, 64); err == nil {
			return floatJSON(f)
		}
	}
	if strings.HasPrefix(plain, "0b") || strings.HasPrefix(plain, "-0b") {
		return nil, kindSlow
	}
	return nil, kindString
}

// numeric holds the bytes of integers in any base, floats and the
// timestamps go.yaml.in/yaml/v2 recognises.
var numeric = func() (table [256]bool) {
	for _, c := range []byte("0123456789+-._:xXoObBabcdefABCDEFpPtTzZ ") {
		table[c] = true
	}
	return table
}()

// floatJSON is a float as encoding/json writes it; the infinities and
// NaN, which JSON has not, are left to the slow path.
func floatJSON(f float64) ([]byte, scalarKind) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, kindSlow
	}
	out, err := json.Marshal(f)
	if err != nil {
		return nil, kindSlow
	}
	return out, kindOther
}

func isTimestamp(s string) bool {
	digits := 0
	for digits < len(s) && s[digits] >= '0' && s[digits] <= '9' {
		digits++
	}
	if digits != 4 || digits == len(s) || s[digits] != '-' {
		return false
	}
	for _, layout := range yamlTimestamps {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}
