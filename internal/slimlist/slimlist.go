// Package slimlist reads the API server's protobuf lists, pruned to what
// engine.Trim keeps of the kinds the rules read before they are decoded.
//
// Decoding is most of what listing costs a client: a chart-shaped
// StatefulSet's probes, resources, security contexts, managed fields and
// status are most of its bytes, and each becomes allocated structs only to
// be trimmed away. Dropping them on the wire, where a field is skipped by
// its length, leaves the typed decoder only what the rules read.
package slimlist

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// shape says which fields of a protobuf message are kept: those listed
// when keepListed, the others when not; a field with a nested shape is
// kept pruned to it.
type shape struct {
	keepListed bool
	listed     uint64 // bit n: field n (field numbers of these messages are below 64)
	nested     map[protowire.Number]*shape
}

// only keeps the fields listed; allBut keeps all other fields.
func only(fields ...protowire.Number) *shape { return &shape{keepListed: true, listed: bits(fields)} }
func allBut(fields ...protowire.Number) *shape {
	return &shape{keepListed: false, listed: bits(fields)}
}

func bits(fields []protowire.Number) uint64 {
	var b uint64
	for _, f := range fields {
		b |= 1 << f
	}
	return b
}

// with keeps field pruned to nested.
func (s *shape) with(field protowire.Number, nested *shape) *shape {
	if s.nested == nil {
		s.nested = map[protowire.Number]*shape{}
	}
	s.nested[field] = nested
	return s
}

func (s *shape) keeps(field protowire.Number) bool {
	listed := field < 64 && s.listed&(1<<field) != 0
	return listed == s.keepListed
}

// The field numbers are those of k8s.io/api's generated.proto files;
// TestPrunedIsTrimmed fills every field and checks the pruned object is the
// trimmed one.
var (
	// ObjectMeta: all but managedFields.
	workloadMeta = allBut(17)
	// ObjectMeta: name, namespace, uid, resourceVersion, as engine.Trim
	// keeps of a looked-up object.
	lookupMeta = only(1, 3, 5, 6)
	// Container: name, image, command, args, env, volumeMounts,
	// restartPolicy.
	container = only(1, 2, 3, 4, 7, 9, 24)
	// PodTemplateSpec: the labels and annotations of its metadata; of its
	// PodSpec, volumes, containers and initContainers.
	podTemplate = only().
			with(1, only(11, 12)).
			with(2, only(1).with(2, container).with(20, container))
	// Deployment: metadata; of the spec, replicas, the template pruned
	// and the strategy (fields 1, 3, 4); no status.
	deployment = only().with(1, workloadMeta).with(2, only(1, 4).with(3, podTemplate))
	// StatefulSet: metadata; of the spec, replicas, the template pruned,
	// the claim templates' names and the Service name (fields 1, 3, 4,
	// 5); no status.
	statefulSet = only().with(1, workloadMeta).with(2, only(1, 5).with(3, podTemplate).with(4, only().with(1, only(1))))
	// Service: spec's selector, clusterIP and type.
	service = only().with(1, lookupMeta).with(2, only(2, 3, 4))
	// PersistentVolumeClaim: spec's accessModes; status's phase and
	// accessModes.
	claim = only().with(1, lookupMeta).with(2, only(1)).with(3, only(1, 2))
)

// items are the item shapes of the lists pruned, by the list's kind.
var items = map[string]*shape{
	"StatefulSetList":           statefulSet,
	"DeploymentList":            deployment,
	"ServiceList":               service,
	"PersistentVolumeClaimList": claim,
}

// protobufMagic begins every protobuf body of the API server, before the
// runtime.Unknown that wraps the object.
var protobufMagic = []byte("k8s\x00")

// Get lists one page of resource (plural, as in the API path) in
// namespace ("" for every namespace) and calls fn with each item, as
// Each reads them from the answer. It returns the list's ListMeta.
func Get(ctx context.Context, client rest.Interface, namespace, resource string, opts metav1.ListOptions, fn func(item []byte) error) (metav1.ListMeta, error) {
	body, err := client.Get().NamespaceIfScoped(namespace, namespace != "").Resource(resource).
		VersionedParams(&opts, scheme.ParameterCodec).SetHeader("Accept", runtime.ContentTypeProtobuf).Stream(ctx)
	if err != nil {
		return metav1.ListMeta{}, err
	}
	defer body.Close()
	return Each(body, fn)
}

// Each reads the protobuf body of a list from r, as the API server sends
// it, and calls fn with each item's protobuf, pruned when the list's kind
// is one the rules read: the item is then what engine.Trim keeps of it.
// An item's bytes are fn's only during the call. It returns the list's
// ListMeta. The body is read as it arrives, never held whole: an API
// server without watch-lists answers a first list of every object of a
// kind in one answer, whatever its limit.
func Each(r io.Reader, fn func(item []byte) error) (metav1.ListMeta, error) {
	in := &counting{r: bufio.NewReaderSize(r, 64<<10)}
	var meta metav1.ListMeta
	magic := make([]byte, len(protobufMagic))
	if _, err := io.ReadFull(in, magic); err != nil || !bytes.Equal(magic, protobufMagic) {
		if trimmed := bytes.TrimSpace(magic); len(trimmed) > 0 && trimmed[0] == '{' {
			return meta, errors.New("the answer is JSON, not protobuf: is a proxy in front of the API server re-encoding it?")
		}
		return meta, fmt.Errorf("the answer is not protobuf (%v)", err)
	}
	// runtime.Unknown: typeMeta (1, its kind 2), raw (2, the list),
	// contentEncoding (3), in that order.
	var kind string
	var buf []byte
	for {
		num, typ, err := in.tag()
		if err == io.EOF {
			return meta, nil
		}
		if err != nil {
			return meta, fmt.Errorf("the answer's envelope: %w", noEOF(err))
		}
		if typ != protowire.BytesType || num > 3 {
			if err := in.skip(typ); err != nil {
				return meta, fmt.Errorf("the answer's envelope: %w", err)
			}
			continue
		}
		size, err := in.varint()
		if err != nil {
			return meta, fmt.Errorf("the answer's envelope: %w", noEOF(err))
		}
		if num == 2 {
			if err := each(in, in.n+int64(size), items[kind], &meta, fn); err != nil {
				return meta, fmt.Errorf("%s: %w", kind, err)
			}
			continue
		}
		if buf, err = in.bytes(buf, size); err != nil {
			return meta, fmt.Errorf("the answer's envelope: %w", err)
		}
		switch num {
		case 1:
			typeMeta, err := fieldsOf(buf)
			if err != nil {
				return meta, fmt.Errorf("the answer's envelope: %w", err)
			}
			kind = string(typeMeta[2])
		case 3:
			if len(buf) > 0 {
				return meta, fmt.Errorf("the answer's envelope: an unknown content encoding %q", buf)
			}
		}
	}
}

// each reads a list's fields up to the input's offset end: its ListMeta
// (field 1) into meta, and each item (field 2), pruned to item when it is
// not nil, into fn.
func each(in *counting, end int64, item *shape, meta *metav1.ListMeta, fn func([]byte) error) error {
	var buf []byte
	for in.n < end {
		num, typ, err := in.tag()
		if err != nil {
			return noEOF(err)
		}
		if typ != protowire.BytesType || num > 2 {
			if err := in.skip(typ); err != nil {
				return err
			}
			continue
		}
		size, err := in.varint()
		if err != nil {
			return noEOF(err)
		}
		if buf, err = in.bytes(buf, size); err != nil {
			return err
		}
		switch num {
		case 1:
			if err := meta.Unmarshal(buf); err != nil {
				return err
			}
		case 2:
			value := buf
			if item != nil {
				if value, err = item.prune(buf[:0], buf); err != nil {
					return err
				}
			}
			if err := fn(value); err != nil {
				return err
			}
		}
	}
	if in.n != end {
		return errors.New("an item runs past the list's end")
	}
	return nil
}

// counting reads from r, counting the bytes read.
type counting struct {
	r *bufio.Reader
	n int64
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *counting) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func (c *counting) varint() (uint64, error) { return binary.ReadUvarint(c) }

// tag reads a field's tag; io.EOF when the input ends before it.
func (c *counting) tag() (protowire.Number, protowire.Type, error) {
	v, err := c.varint()
	if err != nil {
		return 0, 0, err
	}
	num, typ := protowire.DecodeTag(v)
	if num < protowire.MinValidNumber {
		return 0, 0, errors.New("an invalid field number")
	}
	return num, typ, nil
}

// bytes reads size bytes into buf, grown when too small.
func (c *counting) bytes(buf []byte, size uint64) ([]byte, error) {
	if size > maxField {
		return nil, fmt.Errorf("a field of %d bytes", size)
	}
	if uint64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	_, err := io.ReadFull(c, buf)
	return buf, noEOF(err)
}

// maxField bounds a field read whole: an item, or the envelope's type.
// The API server refuses objects over 1.5 MiB (etcd's request limit).
const maxField = 64 << 20

// skip reads past a field's value.
func (c *counting) skip(typ protowire.Type) error {
	var size uint64
	switch typ {
	case protowire.VarintType:
		_, err := c.varint()
		return noEOF(err)
	case protowire.Fixed32Type:
		size = 4
	case protowire.Fixed64Type:
		size = 8
	case protowire.BytesType:
		var err error
		if size, err = c.varint(); err != nil {
			return noEOF(err)
		}
	default:
		return fmt.Errorf("an unsupported wire type %d", typ)
	}
	n, err := io.CopyN(io.Discard, c, int64(size))
	if n < int64(size) {
		return noEOF(err)
	}
	return nil
}

// noEOF is err, an unexpected one when the input ended.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// nextField is msg's first field: its number, wire type, the field
// whole (tag and value), and its tag's length.
func nextField(msg []byte) (num protowire.Number, typ protowire.Type, field []byte, tag int, err error) {
	num, typ, tag = protowire.ConsumeTag(msg)
	if tag < 0 {
		return 0, 0, nil, 0, protowire.ParseError(tag)
	}
	size := protowire.ConsumeFieldValue(num, typ, msg[tag:])
	if size < 0 {
		return 0, 0, nil, 0, protowire.ParseError(size)
	}
	return num, typ, msg[:tag+size], tag, nil
}

// fieldsOf is the value of each of msg's length-delimited fields
// numbered below 5, the last of a number, as far as a TypeMeta goes.
func fieldsOf(msg []byte) ([5][]byte, error) {
	var values [5][]byte
	for len(msg) > 0 {
		num, typ, f, tag, err := nextField(msg)
		if err != nil {
			return values, err
		}
		if num < 5 && typ == protowire.BytesType {
			values[num], _ = protowire.ConsumeBytes(f[tag:])
		}
		msg = msg[len(f):]
	}
	return values, nil
}

// prune appends to dst the fields of msg that s keeps. dst may share
// msg's memory if it ends at or before msg's start.
func (s *shape) prune(dst, msg []byte) ([]byte, error) {
	for len(msg) > 0 {
		num, typ, f, tag, err := nextField(msg)
		if err != nil {
			return nil, err
		}
		msg = msg[len(f):]
		nested := s.nested[num]
		switch {
		case nested != nil:
			if typ != protowire.BytesType {
				return nil, fmt.Errorf("field %d is not a message", num)
			}
			value, _ := protowire.ConsumeBytes(f[tag:])
			if dst, err = nested.appendMessage(append(dst, f[:tag]...), value); err != nil {
				return nil, err
			}
		case s.keeps(num):
			dst = append(dst, f...)
		}
	}
	return dst, nil
}

// appendMessage appends msg pruned to s, after its length.
func (s *shape) appendMessage(dst, msg []byte) ([]byte, error) {
	// The length is not known before pruning, and is at most msg's: it
	// gets as many bytes as msg's length, and the message moves down
	// when it needs fewer.
	width := protowire.SizeVarint(uint64(len(msg)))
	at := len(dst)
	dst = append(dst, make([]byte, width)...)
	dst, err := s.prune(dst, msg)
	if err != nil {
		return nil, err
	}
	size := len(dst) - at - width
	if w := protowire.SizeVarint(uint64(size)); w < width {
		copy(dst[at+w:], dst[at+width:])
		dst = dst[:at+w+size]
	}
	protowire.AppendVarint(dst[at:at], uint64(size))
	return dst, nil
}
