package check

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/stateguard/stateguard/config"
	"github.com/stateguard/stateguard/engine"
	"github.com/stateguard/stateguard/test/manifests"
)

// BenchmarkCheck reads, indexes and judges generated inputs of 10,000 and
// 40,000 objects from memory; ns/op of the two shows whether time grows
// linearly with the input.
func BenchmarkCheck(b *testing.B) {
	eng := engine.New(config.Default().Settings())
	for _, objects := range []int{10000, 40000} {
		var input bytes.Buffer
		if err := manifests.Write(&input, objects); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("objects=%d", objects), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				code := Run(context.Background(), eng, Options{Paths: []string{"-"}, Read: ReadOptions{Namespace: "default"}, Output: "json"},
					bytes.NewReader(input.Bytes()), io.Discard, io.Discard)
				if code != 0 {
					b.Fatalf("exit status %d on a compliant input", code)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(objects), "ns/object")
		})
	}
}
