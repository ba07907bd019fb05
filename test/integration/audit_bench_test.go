package integration

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/stateguard/stateguard/test/manifests"
)

// The populations of BenchmarkAuditScale: -workloads (half StatefulSets
// with their headless Services, half Deployments with their claims), and
// -services and -claims of their own. make bench-audit passes them.
var (
	benchWorkloads = flag.Int("workloads", 10000, "BenchmarkAuditScale: workloads, half StatefulSets with their Services, half Deployments with their claims")
	benchServices  = flag.Int("services", 0, "BenchmarkAuditScale: Services besides the workloads'")
	benchClaims    = flag.Int("claims", 0, "BenchmarkAuditScale: claims besides the workloads'")
	// A stateguard binary to measure beside the one under test, say of an
	// earlier commit: its figures are reported next to them.
	benchBaseline = flag.String("baseline", "", "BenchmarkAuditScale: another stateguard binary, measured alternately with the one under test")
)

// BenchmarkAuditScale seeds a tenth of the population, measures, seeds the
// rest and measures again: `stateguard audit -A -o json` (wall time, peak
// memory) and a server's first background pass (its duration, and the
// server's peak memory with every object in its caches), three times
// each, medians reported. The two stages give how memory grows per 10,000
// objects. The objects are shaped as charts make them (labels, probes,
// resources, security contexts); 100 StatefulSets lack their Service.
// Run it once: make bench-audit.
func BenchmarkAuditScale(b *testing.B) {
	const perNamespace, violating, runs = 500, 100, 3
	// The CLI and the server of each variant: make build's and the image's.
	binaries := map[string][2]string{"": {stateguardBin, serverBin}}
	if *benchBaseline != "" {
		binaries["baseline "] = [2]string{*benchBaseline, *benchBaseline}
	}
	seeder := newAuditSeeder(b)
	dry := seeder.violating(violating)
	seeded := violating
	for stage, share := range []float64{0.1, 1} {
		before := seeded
		seeded += seeder.seed(int(share*float64(*benchWorkloads)), int(share*float64(*benchServices)), int(share*float64(*benchClaims)), perNamespace)
		b.Logf("stage %d: %d objects (%d new, created in %s)", stage+1, seeded, seeded-before, seeder.took.Round(time.Second))
		for _, name := range slices.Sorted(maps.Keys(binaries)) {
			cli, serverBinary := binaries[name][0], binaries[name][1]
			var cliTimes, cliCPU, cliRSS, passTimes, serverRSS []float64
			for range runs {
				wall, cpu, rss := auditCLI(b, cli, violating)
				cliTimes, cliCPU, cliRSS = append(cliTimes, wall), append(cliCPU, cpu), append(cliRSS, rss)

				// A server audits once an hour: its first pass is the one measured.
				server := startServerBinary(b, serverBinary, kubeconfig, "--leader-elect", "--namespace", "default", "--audit-interval", "1h")
				server.waitFirstPass(b)
				passTimes = append(passTimes, metricSumAt(b, server.metricsURL, "stateguard_audit_last_run_duration_seconds"))
				serverRSS = append(serverRSS, peakRSS(b, server.pid))
				server.stop()
				if events := violationEvents(b, dry, ""); len(events) != violating {
					out, _ := os.ReadFile(server.log)
					b.Fatalf("%d PolicyViolation Events in %s, want %d; log:\n%s", len(events), dry, violating, lastLines(out, 30))
				}
			}
			unit := fmt.Sprintf("%s%dk", strings.ReplaceAll(name, " ", "-"), seeded/1000)
			b.ReportMetric(median(cliTimes), "cli-s-"+unit)
			b.ReportMetric(median(cliRSS), "cli-MiB-"+unit)
			b.ReportMetric(median(cliCPU), "cli-cpu-s-"+unit)
			b.ReportMetric(median(passTimes), "pass-s-"+unit)
			b.ReportMetric(median(serverRSS), "server-MiB-"+unit)
			b.Logf("%s%d objects: CLI audit wall %.2f s (its CPU %.2f s), peak RSS %.0f MiB; background pass %.2f s, server peak RSS (caches included) %.0f MiB (medians of %v, %v, %v, %v, %v)",
				name, seeded, median(cliTimes), median(cliCPU), median(cliRSS), median(passTimes), median(serverRSS), cliTimes, cliCPU, cliRSS, passTimes, serverRSS)
		}
	}
}

// auditCLI runs `stateguard audit -A -o json`, checks that it found the
// violating StatefulSets, and returns its wall time and CPU in seconds
// and its peak memory in MiB.
func auditCLI(b *testing.B, cli string, violating int) (wall, cpu, rss float64) {
	start := time.Now()
	cmd := exec.Command(cli, "audit", "-A", "-o", "json", "--kubeconfig", kubeconfig)
	out, err := cmd.Output()
	if code := cmd.ProcessState.ExitCode(); code != 0 && code != 1 {
		b.Fatalf("audit: %v", err)
	}
	wall = time.Since(start).Seconds()
	if got := strings.Count(string(out), `"rule": "statefulset-headless-service"`); got < violating {
		b.Fatalf("the audit found %d StatefulSets without their Service, want at least %d", got, violating)
	}
	// The CLI's own CPU, against its wall time: the rest is the API
	// server's (and the wire).
	cpu = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	return wall, cpu, float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024
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

// auditSeeder creates the benchmark's objects, 16 writers at once.
type auditSeeder struct {
	b    *testing.B
	cs   *kubernetes.Clientset
	next int           // the next object's number
	took time.Duration // the last seed's
	ns   string        // the namespace being filled, and how full
	inNS int
}

func newAuditSeeder(b *testing.B) *auditSeeder {
	config := *restConfig
	config.QPS, config.Burst = 1000, 2000
	cs, err := kubernetes.NewForConfig(&config)
	if err != nil {
		b.Fatal(err)
	}
	return &auditSeeder{b: b, cs: cs}
}

// violating creates StatefulSets without their Service in a namespace in
// dryrun, where the webhook admits them, and returns the namespace.
func (s *auditSeeder) violating(n int) string {
	dry := namespace(s.b, nil, map[string]string{"stateguard.io/enforcement": "dryrun"})
	s.run(func(jobs chan<- func() error) {
		for i := range n {
			jobs <- func() error {
				_, err := s.cs.AppsV1().StatefulSets(dry).Create(context.Background(), manifests.StatefulSet(fmt.Sprintf("orphan-%d", i)), metav1.CreateOptions{})
				return err
			}
		}
	})
	return dry
}

// seed creates workloads (with their Services and claims), services and
// claims, perNamespace objects to a namespace, and returns how many.
func (s *auditSeeder) seed(workloads, services, claims, perNamespace int) int {
	ctx := context.Background()
	created := 0
	s.run(func(jobs chan<- func() error) {
		namespaced := func(count int) string {
			if s.ns == "" || s.inNS+count > perNamespace {
				s.ns, s.inNS = namespace(s.b, nil, nil), 0
			}
			s.inNS += count
			created += count
			s.next++
			return s.ns
		}
		for i := range workloads {
			ns := namespaced(2)
			name := fmt.Sprintf("app-%d", s.next)
			if i%2 == 0 {
				jobs <- func() error {
					if _, err := s.cs.CoreV1().Services(ns).Create(ctx, manifests.Service(name), metav1.CreateOptions{}); err != nil {
						return err
					}
					_, err := s.cs.AppsV1().StatefulSets(ns).Create(ctx, manifests.StatefulSet(name), metav1.CreateOptions{})
					return err
				}
				continue
			}
			jobs <- func() error {
				if _, err := s.cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, manifests.Claim(name), metav1.CreateOptions{}); err != nil {
					return err
				}
				_, err := s.cs.AppsV1().Deployments(ns).Create(ctx, manifests.Deployment(name), metav1.CreateOptions{})
				return err
			}
		}
		for range services {
			ns := namespaced(1)
			svc := manifests.Service(fmt.Sprintf("svc-%d", s.next))
			jobs <- func() error {
				_, err := s.cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
				return err
			}
		}
		for range claims {
			ns := namespaced(1)
			claim := manifests.Claim(fmt.Sprintf("claim-%d", s.next))
			jobs <- func() error {
				_, err := s.cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, claim, metav1.CreateOptions{})
				return err
			}
		}
	})
	return created
}

// run runs the jobs that fill sends, 16 at once, and fails the benchmark
// on the first error.
func (s *auditSeeder) run(fill func(jobs chan<- func() error)) {
	start := time.Now()
	jobs := make(chan func() error)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 16 {
		wg.Go(func() {
			for j := range jobs {
				if err := j(); err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	fill(jobs)
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		s.b.Fatal(firstErr)
	}
	s.took = time.Since(start)
}
