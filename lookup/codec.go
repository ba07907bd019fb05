package lookup

import (
	"maps"
	"slices"

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
		return claimCodec{}
	case *corev1.Namespace:
		return namespaceCodec{}
	}
	return protobufCodec{}
}

type protobufCodec struct{}

func (protobufCodec) encode(obj Stored) (any, error) { return obj.Marshal() }

func (protobufCodec) decode(_ key, data any, obj Stored) error { return obj.Unmarshal(data.([]byte)) }

// storedService is what engine.Trim keeps of a Service but its name.
type storedService struct {
	typ       corev1.ServiceType
	clusterIP string
	selector  []string // key, value, key, value, ...
}

type serviceCodec struct{}

func (serviceCodec) encode(obj Stored) (any, error) {
	svc := obj.(*corev1.Service)
	s := &storedService{typ: svc.Spec.Type, clusterIP: svc.Spec.ClusterIP}
	for k, v := range svc.Spec.Selector {
		s.selector = append(s.selector, k, v)
	}
	return s, nil
}

func (serviceCodec) decode(k key, data any, obj Stored) error {
	s, svc := data.(*storedService), obj.(*corev1.Service)
	svc.Name, svc.Namespace = k.name, k.namespace
	svc.Spec.Type, svc.Spec.ClusterIP = s.typ, s.clusterIP
	if len(s.selector) > 0 {
		svc.Spec.Selector = make(map[string]string, len(s.selector)/2)
		for i := 0; i < len(s.selector); i += 2 {
			svc.Spec.Selector[s.selector[i]] = s.selector[i+1]
		}
	}
	return nil
}

// storedClaim is what engine.Trim keeps of a claim but its name.
type storedClaim struct {
	accessModes, boundModes []corev1.PersistentVolumeAccessMode
	phase                   corev1.PersistentVolumeClaimPhase
}

type claimCodec struct{}

func (claimCodec) encode(obj Stored) (any, error) {
	c := obj.(*corev1.PersistentVolumeClaim)
	return &storedClaim{accessModes: c.Spec.AccessModes, boundModes: c.Status.AccessModes, phase: c.Status.Phase}, nil
}

func (claimCodec) decode(k key, data any, obj Stored) error {
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
