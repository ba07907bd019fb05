package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// hostPathVolumes is where kube-controller-manager's hostPath provisioner
// creates the volumes of the default StorageClass.
const hostPathVolumes = "/tmp/hostpath_pv"

// down stops the cluster of state and removes what it leaves on the host:
// containers and their processes, mounts, the Pods' network namespaces
// (and with them their veth devices), iptables chains, cgroups, routes and
// volumes. The state folder keeps the logs. It is safe to run on a cluster
// that is not running, or whose processes were killed.
func down(state string) error {
	// The kubelet first, so that it restarts nothing; the API server and
	// etcd last, so that the controllers stop against a live server.
	for _, name := range []string{"kube-proxy", "kubelet", "kube-scheduler", "kube-controller-manager"} {
		stopProcess(state, name)
	}
	removeContainers()
	killPodProcesses()
	stopProcess(state, "containerd")
	killShims()
	for _, name := range []string{"kube-apiserver", "etcd"} {
		stopProcess(state, name)
	}
	killStragglers(state)
	unmountAll(state)
	netns, _ := filepath.Glob("/run/netns/cni-*")
	for _, ns := range netns {
		_ = os.Remove(ns)
	}
	removePodCgroups()
	for _, family := range []string{"iptables", "ip6tables"} {
		if err := removeChains(family); err != nil {
			fmt.Fprintf(os.Stderr, "cluster down: %s: %v\n", family, err)
		}
	}
	_ = exec.Command("ip", "route", "del", "local", serviceCIDR, "dev", "lo", "table", "local").Run()
	for _, dir := range []string{runDir, hostPathVolumes, filepath.Join(state, "kubelet"), filepath.Join(state, "containerd")} {
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(os.Stderr, "cluster down: removing %s: %v\n", dir, err)
		}
	}
	if left := leftovers(state); len(left) > 0 {
		return fmt.Errorf("left behind:\n  %s", strings.Join(left, "\n  "))
	}
	fmt.Printf("the cluster of %s is down (logs kept in %s)\n", state, filepath.Join(state, "logs"))
	return nil
}

// livePID returns the pid recorded for name if that process still runs
// the component's program (a recycled pid is not ours to kill).
func livePID(state, name string) (int, error) {
	b, err := os.ReadFile(filepath.Join(state, "pids", name))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		return 0, err
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != name {
		return 0, errors.New("not running")
	}
	return pid, nil
}

// stopProcess sends SIGTERM, and SIGKILL after 20 seconds.
func stopProcess(state, name string) {
	pid, err := livePID(state, name)
	if err != nil {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, err := livePID(state, name); err != nil {
			return
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for range 50 {
		if _, err := livePID(state, name); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeContainers kills and removes every container through containerd,
// when it still answers.
func removeContainers() {
	ctr := func(args ...string) []string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, "ctr", append([]string{"--address", filepath.Join(runDir, "containerd.sock"), "--namespace", "k8s.io"}, args...)...).Output()
		return strings.Fields(string(out))
	}
	if _, err := os.Stat(filepath.Join(runDir, "containerd.sock")); err != nil {
		return
	}
	for _, task := range ctr("tasks", "ls", "-q") {
		ctr("tasks", "kill", "--all", "--signal", "SIGKILL", task)
		ctr("tasks", "delete", "--force", task)
	}
	if containers := ctr("containers", "ls", "-q"); len(containers) > 0 {
		ctr(append([]string{"containers", "rm"}, containers...)...)
	}
}

// podCgroups returns the kubelet's cgroups (kubepods and below) of every
// cgroup v1 controller, deepest first.
func podCgroups() []string {
	var dirs []string
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	for _, root := range roots {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
	}
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return dirs
}

// killPodProcesses kills every process in the kubelet's cgroups: what a
// killed containerd's shims left running.
func killPodProcesses() {
	for range 50 {
		alive := false
		for _, dir := range podCgroups() {
			procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			for _, field := range strings.Fields(string(procs)) {
				if pid, err := strconv.Atoi(field); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					alive = true
				}
			}
		}
		if !alive {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killShims kills the containerd shims of this cluster's containerd.
func killShims() {
	for _, pid := range processesWhere(func(_ string, cmdline []byte) bool {
		return bytes.Contains(cmdline, []byte("containerd-shim")) && bytes.Contains(cmdline, []byte(runDir))
	}) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// processesWhere returns the pids of the processes whose program (the
// base name of its executable) and command line match.
func processesWhere(match func(program string, cmdline []byte) bool) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		cmdline, _ := os.ReadFile(p)
		if match(filepath.Base(strings.TrimSuffix(exe, " (deleted)")), cmdline) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// componentNames are the programs the cluster runs.
var componentNames = []string{"etcd", "kube-apiserver", "containerd", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"}

// stragglers returns the pids of the cluster's programs that run with the
// state folder or runDir in their arguments, whatever the pid files say
// (they may be missing, or from another start).
func stragglers(state string) []int {
	return processesWhere(func(program string, cmdline []byte) bool {
		return slices.Contains(componentNames, program) &&
			(bytes.Contains(cmdline, []byte(state+"/")) || bytes.Contains(cmdline, []byte(runDir+"/")))
	})
}

func killStragglers(state string) {
	for range 50 {
		pids := stragglers(state)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func removePodCgroups() {
	for range 20 {
		dirs := podCgroups()
		if len(dirs) == 0 {
			return
		}
		for _, dir := range dirs {
			_ = syscall.Rmdir(dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ourMounts returns the mount points of the cluster (under the state
// folder and runDir, and the Pods' network namespaces), deepest first.
func ourMounts(state string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var mounts []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if strings.HasPrefix(mp, state+"/") || strings.HasPrefix(mp, runDir+"/") || strings.HasPrefix(mp, "/run/netns/cni-") || strings.HasPrefix(mp, hostPathVolumes+"/") {
			mounts = append(mounts, mp)
		}
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(mounts)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unmountAll(state string) {
	for range 10 {
		mounts := ourMounts(state)
		if len(mounts) == 0 {
			return
		}
		for _, mp := range mounts {
			_ = syscall.Unmount(mp, syscall.MNT_DETACH)
		}
	}
}

// ourChain reports whether an iptables-save line declares, appends to or
// jumps to a chain of the kubelet, kube-proxy or CNI.
func ourChain(line string) bool {
	if strings.HasPrefix(line, ":KUBE-") || strings.HasPrefix(line, ":CNI-") {
		return true
	}
	fields := strings.Fields(line)
	for i, f := range fields {
		if i+1 < len(fields) && (f == "-A" || f == "-j" || f == "--jump" || f == "-g" || f == "--goto") &&
			(strings.HasPrefix(fields[i+1], "KUBE-") || strings.HasPrefix(fields[i+1], "CNI-")) {
			return true
		}
	}
	return false
}

// removeChains rewrites the tables without the cluster's chains and the
// rules that jump to them; other rules stay as they are.
func removeChains(family string) error {
	saved, err := exec.Command(family + "-save").Output()
	if err != nil {
		return err
	}
	var kept bytes.Buffer
	removed := false
	for _, line := range strings.SplitAfter(string(saved), "\n") {
		if ourChain(line) {
			removed = true
			continue
		}
		kept.WriteString(line)
	}
	if !removed {
		return nil
	}
	restore := exec.Command(family + "-restore")
	restore.Stdin = &kept
	if out, err := restore.CombinedOutput(); err != nil {
		return fmt.Errorf("%s-restore: %v: %s", family, err, out)
	}
	return nil
}

// leftovers lists what down could not remove.
func leftovers(state string) []string {
	var left []string
	for _, mp := range ourMounts(state) {
		left = append(left, "mount "+mp)
	}
	if out, err := exec.Command("ip", "-o", "link", "show", "type", "veth").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		left = append(left, "veth devices: "+strings.TrimSpace(string(out)))
	}
	for _, family := range []string{"iptables", "ip6tables"} {
		saved, _ := exec.Command(family + "-save").Output()
		for _, line := range strings.Split(string(saved), "\n") {
			if ourChain(line) {
				left = append(left, family+": "+line)
			}
		}
	}
	for _, dir := range podCgroups() {
		left = append(left, "cgroup "+dir)
	}
	for _, pid := range stragglers(state) {
		left = append(left, fmt.Sprintf("process %d", pid))
	}
	return left
}
