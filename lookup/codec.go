package lookup

import (
	"encoding/binary"
	"maps"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
)

// A codec is how a Store keeps the objects of one kind: encode is given
// the trimmed object, decode fills a new one.
type codec interface {
	encode(Stored) (any, error)
	decode(key, any, Stored) error
}

// codecOf is the codec of obj's kind. Workloads and HPAs, read seldom,
// are kept in protobuf. Services and claims, of which a cluster has the
// most, and Namespaces, read by every review, are kept as the few fields
// the rules read, which cost the least to keep and to read back: a
// Service lookup makes 2 allocations, against 10 to decode protobuf.
func codecOf(obj Stored) codec {
	switch obj.(type) {
	case *corev1.Service:
		return serviceCodec{}
	case *corev1.PersistentVolumeClaim:
		return &claimCodec{states: map[string]*storedClaim{}}
	case *corev1.Namespace:
		return namespaceCodec{}
	}
	return protobufCodec{}
}

type protobufCodec struct{}

func (protobufCodec) encode(obj Stored) (any, error) { return obj.Marshal() }

func (protobufCodec) decode(_ key, data any, obj Stored) error { return obj.Unmarshal(data.([]byte)) }

// serviceCodec keeps what engine.Trim keeps of a Service but its name in
// one string: its type, its clusterIP, then its selector's keys and
// values, each after its length. One allocation in place of one per
// string, a struct and a slice: 325 bytes a Service became 204
// (BenchmarkStoreMemory).
type serviceCodec struct{}

func (serviceCodec) encode(obj Stored) (any, error) {
	svc := obj.(*corev1.Service)
	n := len(svc.Spec.Type) + len(svc.Spec.ClusterIP) + 2*binary.MaxVarintLen16
	for k, v := range svc.Spec.Selector {
		n += len(k) + len(v) + 2*binary.MaxVarintLen16
	}
	b := make([]byte, 0, n)
	b = appendField(b, string(svc.Spec.Type))
	b = appendField(b, svc.Spec.ClusterIP)
	for k, v := range svc.Spec.Selector {
		b = appendField(appendField(b, k), v)
	}
	return string(b), nil
}

func (serviceCodec) decode(k key, data any, obj Stored) error {
	rest, svc := data.(string), obj.(*corev1.Service)
	svc.Name, svc.Namespace = k.name, k.namespace
	var typ string
	typ, rest = nextField(rest)
	svc.Spec.Type = corev1.ServiceType(typ)
	svc.Spec.ClusterIP, rest = nextField(rest)
	for rest != "" {
		if svc.Spec.Selector == nil {
			svc.Spec.Selector = map[string]string{}
		}
		var key, value string
		key, rest = nextField(rest)
		value, rest = nextField(rest)
		svc.Spec.Selector[key] = value
	}
	return nil
}

// appendField appends s after its length.
func appendField(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// nextField is the field at the start of s, and what follows it. The
// decoded strings share the stored one's bytes, which nothing writes.
func nextField(s string) (field, rest string) {
	n, shift, i := 0, 0, 0
	for ; s[i] >= 0x80; i++ {
		n |= int(s[i]&0x7f) << shift
		shift += 7
	}
	n |= int(s[i]) << shift
	i++
	return s[i : i+n], s[i+n:]
}

// storedClaim is what engine.Trim keeps of a claim but its name. A
// cluster's claims have a handful of access modes and phases between
// them, so each claim points to one shared storedClaim: a claim costs its
// name and its place in the map.
type storedClaim struct {
	accessModes, boundModes []corev1.PersistentVolumeAccessMode
	phase                   corev1.PersistentVolumeClaimPhase
}

type claimCodec struct {
	mu     sync.Mutex
	states map[string]*storedClaim // by the fields, each list after its length
}

func (c *claimCodec) encode(obj Stored) (any, error) {
	claim := obj.(*corev1.PersistentVolumeClaim)
	var b []byte
	for _, modes := range [][]corev1.PersistentVolumeAccessMode{claim.Spec.AccessModes, claim.Status.AccessModes} {
		b = binary.AppendUvarint(b, uint64(len(modes)))
		for _, m := range modes {
			b = appendField(b, string(m))
		}
	}
	b = appendField(b, string(claim.Status.Phase))
	c.mu.Lock()
	defer c.mu.Unlock()
	state, ok := c.states[string(b)]
	if !ok {
		state = &storedClaim{accessModes: claim.Spec.AccessModes, boundModes: claim.Status.AccessModes, phase: claim.Status.Phase}
		c.states[string(b)] = state
	}
	return state, nil
}

func (*claimCodec) decode(k key, data any, obj Stored) error {
	s, c := data.(*storedClaim), obj.(*corev1.PersistentVolumeClaim)
	c.Name, c.Namespace = k.name, k.namespace
	c.Spec.AccessModes, c.Status.AccessModes = slices.Clone(s.accessModes), slices.Clone(s.boundModes)
	c.Status.Phase = s.phase
	return nil
}

// storedNamespace is what engine.Trim keeps of a Namespace but its name.
type storedNamespace struct{ labels, annotations map[string]string }

type namespaceCodec struct{}

func (namespaceCodec) encode(obj Stored) (any, error) {
	ns := obj.(*corev1.Namespace)
	return &storedNamespace{labels: ns.Labels, annotations: ns.Annotations}, nil
}

func (namespaceCodec) decode(k key, data any, obj Stored) error {
	s, ns := data.(*storedNamespace), obj.(*corev1.Namespace)
	ns.Name, ns.Namespace = k.name, k.namespace
	ns.Labels, ns.Annotations = maps.Clone(s.labels), maps.Clone(s.annotations)
	return nil
}
