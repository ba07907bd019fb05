package webhook

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The parts of a workload the validating rules read, as decoded from a
// review: what engine.TrimStatefulSet and TrimDeployment keep, which the
// engine's tests prove decides every verdict. Decoding a whole StatefulSet
// allocates for every probe, resource quantity, security context and
// managed-fields entry, most of a review's cost; a key these types do not
// name is skipped without allocating. A field declared here shadows the
// embedded API type's, as in encoding/json. TestJudgedDecodeKeepsWhatRulesRead
// fails when these types and the trimming disagree. The defaulting
// handler decodes its own part of a StatefulSet (defaultedStatefulSet).

// judgedMeta is an object's metadata without its managed fields.
type judgedMeta struct {
	metav1.ObjectMeta
	ManagedFields []struct{} `json:"managedFields"`
}

// judgedContainer is what the rules read of a container: its image, the
// command and arguments that say where data goes, its environment and
// its mounts, and whether an init container is a sidecar.
type judgedContainer struct {
	Name          string                         `json:"name"`
	Image         string                         `json:"image"`
	Command       []string                       `json:"command"`
	Args          []string                       `json:"args"`
	Env           []corev1.EnvVar                `json:"env"`
	VolumeMounts  []corev1.VolumeMount           `json:"volumeMounts"`
	RestartPolicy *corev1.ContainerRestartPolicy `json:"restartPolicy"`
}

// judgedPodTemplate is what the rules read of a Pod template.
type judgedPodTemplate struct {
	Metadata struct {
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
	Spec struct {
		Volumes        []corev1.Volume   `json:"volumes"`
		InitContainers []judgedContainer `json:"initContainers"`
		Containers     []judgedContainer `json:"containers"`
	} `json:"spec"`
}

func (t *judgedPodTemplate) podTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: t.Metadata.Labels, Annotations: t.Metadata.Annotations},
		Spec: corev1.PodSpec{
			Volumes:        t.Spec.Volumes,
			InitContainers: containers(t.Spec.InitContainers),
			Containers:     containers(t.Spec.Containers),
		},
	}
}

func containers(judged []judgedContainer) []corev1.Container {
	if judged == nil {
		return nil
	}
	out := make([]corev1.Container, len(judged))
	for i, c := range judged {
		out[i] = corev1.Container{Name: c.Name, Image: c.Image, Command: c.Command, Args: c.Args, Env: c.Env, VolumeMounts: c.VolumeMounts, RestartPolicy: c.RestartPolicy}
	}
	return out
}

// judgedStatefulSet decodes a StatefulSet for the validating rules.
type judgedStatefulSet struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        judgedMeta `json:"metadata"`
	Spec            struct {
		Replicas    *int32            `json:"replicas"`
		ServiceName string            `json:"serviceName"`
		Template    judgedPodTemplate `json:"template"`
		// Of the claim templates, the rules read the names: their
		// specs' quantities are costly to decode.
		VolumeClaimTemplates []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		} `json:"volumeClaimTemplates"`
	} `json:"spec"`
}

func (j *judgedStatefulSet) object() *appsv1.StatefulSet {
	sts := &appsv1.StatefulSet{TypeMeta: j.TypeMeta, ObjectMeta: j.Metadata.ObjectMeta, Spec: appsv1.StatefulSetSpec{
		Replicas: j.Spec.Replicas, ServiceName: j.Spec.ServiceName, Template: j.Spec.Template.podTemplate(),
	}}
	if j.Spec.VolumeClaimTemplates != nil {
		sts.Spec.VolumeClaimTemplates = make([]corev1.PersistentVolumeClaim, len(j.Spec.VolumeClaimTemplates))
		for i, c := range j.Spec.VolumeClaimTemplates {
			sts.Spec.VolumeClaimTemplates[i].Name = c.Metadata.Name
		}
	}
	return sts
}

// judgedDeployment decodes a Deployment for the validating rules.
type judgedDeployment struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        judgedMeta `json:"metadata"`
	Spec            struct {
		Replicas *int32                    `json:"replicas"`
		Strategy appsv1.DeploymentStrategy `json:"strategy"`
		Template judgedPodTemplate         `json:"template"`
	} `json:"spec"`
}

func (j *judgedDeployment) object() *appsv1.Deployment {
	return &appsv1.Deployment{TypeMeta: j.TypeMeta, ObjectMeta: j.Metadata.ObjectMeta, Spec: appsv1.DeploymentSpec{
		Replicas: j.Spec.Replicas, Strategy: j.Spec.Strategy, Template: j.Spec.Template.podTemplate(),
	}}
}

// defaultedStatefulSet decodes a StatefulSet for the defaulting, which
// reads the fields it defaults, and what shows the user chose them: the
// metadata whole (the last-applied annotation, managed fields). Of the
// spec the templates are skipped, the costly part; the rest is decoded,
// so that a review whose object is not a StatefulSet is still refused.
type defaultedStatefulSet struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		appsv1.StatefulSetSpec
		Template             struct{}   `json:"template"`
		VolumeClaimTemplates []struct{} `json:"volumeClaimTemplates"`
	} `json:"spec"`
}

func (d *defaultedStatefulSet) object() *appsv1.StatefulSet {
	return &appsv1.StatefulSet{TypeMeta: d.TypeMeta, ObjectMeta: d.Metadata, Spec: d.Spec.StatefulSetSpec}
}
