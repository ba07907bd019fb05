package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// BenchmarkAuditScale audits 5,000 StatefulSets with their headless
// Services and 5,000 Deployments with their claims, spread over 20
// namespaces, 100 of the StatefulSets without their Service: the CLI
// (`stateguard audit -A -o json`) and one background pass of a server,
// each five times, with wall time and peak memory. Run it once: make bench-audit.
func BenchmarkAuditScale(b *testing.B) {
	const namespaces, perNamespace, violating = 20, 250, 100
	dry := seedAuditScale(b, namespaces, perNamespace, violating)

	var cliTimes, cliRSS, passTimes, serverRSS []float64
	for range 5 {
		start := time.Now()
		cmd := exec.Command(stateguardBin, "audit", "-A", "-o", "json", "--kubeconfig", kubeconfig)
		out, err := cmd.Output()
		if code := cmd.ProcessState.ExitCode(); code != 0 && code != 1 {
			b.Fatalf("audit: %v", err)
		}
		cliTimes = append(cliTimes, time.Since(start).Seconds())
		cliRSS = append(cliRSS, float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)/1024)
		if got := strings.Count(string(out), `"rule": "statefulset-headless-service"`); got < violating {
			b.Fatalf("the audit found %d StatefulSets without their Service, want at least %d", got, violating)
		}

		// A server audits once an hour: its first pass is the one measured.
		server := startAuditServer(b, kubeconfig, "default", "1h")
		server.waitFirstPass(b)
		passTimes = append(passTimes, metricSumAt(b, server.metricsURL, "stateguard_audit_last_run_duration_seconds"))
		serverRSS = append(serverRSS, peakRSS(b, server.pid))
		server.stop()
		if events := violationEvents(b, dry, ""); len(events) != violating {
			out, _ := os.ReadFile(server.log)
			b.Fatalf("%d PolicyViolation Events in %s, want %d; log:\n%s", len(events), dry, violating, lastLines(out, 30))
		}
	}
	b.ReportMetric(median(cliTimes), "cli-s")
	b.ReportMetric(median(cliRSS), "cli-peak-MiB")
	b.ReportMetric(median(passTimes), "pass-s")
	b.ReportMetric(median(serverRSS), "server-peak-MiB")
	b.Logf("CLI audit: wall %v s, peak RSS %v MiB", cliTimes, cliRSS)
	b.Logf("background pass: %v s; server peak RSS (caches included) %v MiB", passTimes, serverRSS)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// peakRSS is the process's peak resident set size in MiB (VmHWM).
func peakRSS(tb testing.TB, pid int) float64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kib / 1024
		}
	}
	tb.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

// seedAuditScale creates the benchmark's objects, 16 writers at once. The
// violating StatefulSets go to a namespace in dryrun, where the webhook
// admits them.
func seedAuditScale(b *testing.B, namespaces, perNamespace, violating int) (dryNamespace string) {
	ctx := context.Background()
	config := *restConfig
	config.QPS, config.Burst = 500, 1000
	cs, err := kubernetes.NewForConfig(&config)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	type job func() error
	jobs := make(chan job)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 16 {
		wg.Go(func() {
			for j := range jobs {
				if err := j(); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for n := range namespaces {
		ns := namespace(b, nil, nil)
		for i := range perNamespace {
			db, web := fmt.Sprintf("db-%d-%d", n, i), fmt.Sprintf("web-%d-%d", n, i)
			jobs <- func() error {
				if _, err := cs.CoreV1().Services(ns).Create(ctx, benchService(db), metav1.CreateOptions{}); err != nil {
					return err
				}
				_, err := cs.AppsV1().StatefulSets(ns).Create(ctx, benchStatefulSet(db), metav1.CreateOptions{})
				return err
			}
			jobs <- func() error {
				if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, benchClaim(web), metav1.CreateOptions{}); err != nil {
					return err
				}
				_, err := cs.AppsV1().Deployments(ns).Create(ctx, benchDeployment(web), metav1.CreateOptions{})
				return err
			}
		}
	}
	dry := namespace(b, nil, map[string]string{"stateguard.io/enforcement": "dryrun"})
	for i := range violating {
		jobs <- func() error {
			_, err := cs.AppsV1().StatefulSets(dry).Create(ctx, benchStatefulSet(fmt.Sprintf("orphan-%d", i)), metav1.CreateOptions{})
			return err
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	b.Logf("created %d objects in %s", namespaces*perNamespace*4+violating, time.Since(start).Round(time.Second))
	return dry
}

func benchService(name string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 5432}}},
	}
}

func benchStatefulSet(name string) *appsv1.StatefulSet {
	labels := map[string]string{"app": name}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.StatefulSetSpec{
			ServiceName: name,
			Replicas:    ptr.To[int32](3),
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "postgres", Image: "postgres:17",
					Env:          []corev1.EnvVar{{Name: "PGDATA", Value: "/var/lib/postgresql/data/pgdata"}},
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/postgresql/data"}},
				}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}},
				},
			}},
		},
	}
}

func benchClaim(name string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
}

// benchDeployment runs one replica over its claim, replaced with Recreate: compliant.
func benchDeployment(name string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27", VolumeMounts: []corev1.VolumeMount{{Name: "uploads", MountPath: "/uploads"}}}},
					Volumes:    []corev1.Volume{{Name: "uploads", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name}}}},
				},
			},
		},
	}
}
