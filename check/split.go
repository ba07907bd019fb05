package check

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// errTooLarge stands for a file over the size limit: none of its documents
// is judged, so that a truncated file never passes for a whole one.
var errTooLarge = errors.New("larger than the size limit")

// splitStream reads a YAML stream and calls emit with each document and the
// 1-based line of the stream where it starts, as it reads: only the document
// being read is held. Documents are separated by "---" lines; chunks with
// nothing but blank and comment lines are not documents and take no index.
// Each document starts at its first line of content, so that line numbers
// point into the file. More than limit bytes is errTooLarge.
func splitStream(r io.Reader, limit int64, emit func(text []byte, line int) error) error {
	br := bufio.NewReaderSize(io.LimitReader(r, limit+1), 64<<10)
	var (
		doc      []byte
		docLine  int
		lineBuf  []byte
		lineNo   int
		consumed int64
	)
	flush := func() error {
		if doc == nil {
			return nil
		}
		text := doc
		doc = nil
		return emit(text, docLine)
	}
	// take adds one line to the document being read, skipping the blank
	// and comment lines before its first line of content.
	take := func(line []byte, no int) {
		if doc == nil {
			if !hasContent(line) {
				return
			}
			docLine = no
		}
		doc = append(doc, line...)
	}
	for {
		chunk, err := br.ReadSlice('\n')
		lineBuf = append(lineBuf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // a line longer than the buffer: read on
		}
		if len(lineBuf) > 0 {
			consumed += int64(len(lineBuf))
			if consumed > limit {
				return errTooLarge
			}
			lineNo++
			if isSeparator(lineBuf) {
				if ferr := flush(); ferr != nil {
					return ferr
				}
				// Content after "---" on the same line (such as "--- {a: 1}") belongs to the next document.
				take(lineBuf[3:], lineNo)
			} else {
				take(lineBuf, lineNo)
			}
			lineBuf = lineBuf[:0]
		}
		if err == io.EOF {
			return flush()
		}
		if err != nil {
			return err
		}
	}
}

func isSeparator(line []byte) bool {
	return bytes.HasPrefix(line, []byte("---")) && (len(line) == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\n' || line[3] == '\r')
}

// hasContent says whether a line holds more than blanks or a comment.
func hasContent(line []byte) bool {
	line = bytes.TrimSpace(line)
	return len(line) > 0 && line[0] != '#'
}

// formatSize prints a byte count in the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
