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
	"bytes"
	"context"
	"errors"
	"fmt"

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
	// StatefulSet and Deployment: metadata, spec with the template
	// pruned (field 3 of both specs), no status.
	workload = only().with(1, workloadMeta).with(2, allBut().with(3, podTemplate))
	// Service: spec's selector, clusterIP and type.
	service = only().with(1, lookupMeta).with(2, only(2, 3, 4))
	// PersistentVolumeClaim: spec's accessModes; status's phase and
	// accessModes.
	claim = only().with(1, lookupMeta).with(2, only(1)).with(3, only(1, 2))
)

// items are the item shapes of the lists pruned, by the list's kind.
var items = map[string]*shape{
	"StatefulSetList":           workload,
	"DeploymentList":            workload,
	"ServiceList":               service,
	"PersistentVolumeClaimList": claim,
}

// protobufMagic begins every protobuf body of the API server, before the
// runtime.Unknown that wraps the object.
var protobufMagic = []byte("k8s\x00")

// List is a list read from its protobuf body: its ListMeta, and each
// item's protobuf, to be unmarshalled into its type. The items share the
// body's memory.
type List struct {
	metav1.ListMeta
	Items [][]byte
}

// Get reads one page of the list of resource (plural, as in the API
// path) in namespace ("" for every namespace) into buf, and returns it
// read and pruned. The items live in buf until it is written again.
func Get(ctx context.Context, client rest.Interface, namespace, resource string, opts metav1.ListOptions, buf *bytes.Buffer) (List, error) {
	body, err := client.Get().NamespaceIfScoped(namespace, namespace != "").Resource(resource).
		VersionedParams(&opts, scheme.ParameterCodec).SetHeader("Accept", runtime.ContentTypeProtobuf).Stream(ctx)
	if err != nil {
		return List{}, err
	}
	defer body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(body); err != nil {
		return List{}, err
	}
	return Read(buf.Bytes())
}

// Read reads the protobuf body of a list, as the API server sends it,
// and prunes it in place when its items are of a kind the rules read:
// the items are then what engine.Trim keeps of them. The body is lost.
//
// Pruned in place: a field written is never longer than the field read,
// and is written before the next one is read, so the output never
// overtakes the input.
func Read(body []byte) (List, error) {
	unknown, ok := bytes.CutPrefix(body, protobufMagic)
	if !ok {
		if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '{' {
			return List{}, errors.New("the answer is JSON, not protobuf: is a proxy in front of the API server re-encoding it?")
		}
		return List{}, errors.New("the answer is not protobuf")
	}
	// runtime.Unknown: typeMeta (1, its kind 2), raw (2), contentEncoding (3).
	envelope, err := fieldsOf(unknown)
	if err != nil {
		return List{}, fmt.Errorf("the answer's envelope: %w", err)
	}
	typeMeta, err := fieldsOf(envelope[1])
	if err != nil {
		return List{}, fmt.Errorf("the answer's envelope: %w", err)
	}
	if encoding := envelope[3]; len(encoding) > 0 {
		return List{}, fmt.Errorf("the answer's envelope: an unknown content encoding %q", encoding)
	}
	kind, raw := typeMeta[2], envelope[2]
	if item := items[string(kind)]; item != nil {
		// ListMeta (1) and items (2).
		if raw, err = only(1).with(2, item).prune(raw[:0], raw); err != nil {
			return List{}, fmt.Errorf("%s: %w", kind, err)
		}
	}
	var list List
	for len(raw) > 0 {
		num, typ, tag := protowire.ConsumeTag(raw)
		if tag < 0 {
			return List{}, fmt.Errorf("%s: %w", kind, protowire.ParseError(tag))
		}
		if typ != protowire.BytesType {
			return List{}, fmt.Errorf("%s: field %d is not a message", kind, num)
		}
		value, size := protowire.ConsumeBytes(raw[tag:])
		if size < 0 {
			return List{}, fmt.Errorf("%s: %w", kind, protowire.ParseError(size))
		}
		switch num {
		case 1:
			if err := list.ListMeta.Unmarshal(value); err != nil {
				return List{}, fmt.Errorf("%s: %w", kind, err)
			}
		case 2:
			list.Items = append(list.Items, value)
		}
		raw = raw[tag+size:]
	}
	return list, nil
}

// fieldsOf is the value of each of msg's length-delimited fields
// numbered below 5, the last of a number, as far as a runtime.Unknown and
// its TypeMeta go.
func fieldsOf(msg []byte) ([5][]byte, error) {
	var values [5][]byte
	for len(msg) > 0 {
		num, typ, tag := protowire.ConsumeTag(msg)
		if tag < 0 {
			return values, protowire.ParseError(tag)
		}
		size := protowire.ConsumeFieldValue(num, typ, msg[tag:])
		if size < 0 {
			return values, protowire.ParseError(size)
		}
		if num < 5 && typ == protowire.BytesType {
			values[num], _ = protowire.ConsumeBytes(msg[tag:])
		}
		msg = msg[tag+size:]
	}
	return values, nil
}

// prune appends to dst the fields of msg that s keeps. dst may share
// msg's memory if it ends at or before msg's start.
func (s *shape) prune(dst, msg []byte) ([]byte, error) {
	for len(msg) > 0 {
		num, typ, tag := protowire.ConsumeTag(msg)
		if tag < 0 {
			return nil, protowire.ParseError(tag)
		}
		size := protowire.ConsumeFieldValue(num, typ, msg[tag:])
		if size < 0 {
			return nil, protowire.ParseError(size)
		}
		f := msg[:tag+size]
		msg = msg[tag+size:]
		nested := s.nested[num]
		switch {
		case nested != nil:
			if typ != protowire.BytesType {
				return nil, fmt.Errorf("field %d is not a message", num)
			}
			value, _ := protowire.ConsumeBytes(f[tag:])
			var err error
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
