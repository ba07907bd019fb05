// Command cluster runs a one-node Kubernetes cluster on this machine, for
// `make cluster`, `make demo` and the end-to-end tests: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, containerd with
// runc, the kubelet, kube-proxy, CNI (ptp and host-local), CoreDNS and a
// default StorageClass. Every image the node runs is imported from an
// archive built here, since no registry is reachable.
//
//	cluster up   -state bin/cluster -kube DIR -cni DIR -pause-image REF -coredns-image REF IMAGE.tar...
//	cluster status -state bin/cluster -kube DIR
//	cluster down -state bin/cluster
//
// `up` returns once the node is Ready and cluster DNS answers, leaving the
// processes running in the background (their logs are in STATE/logs). It
// is idempotent: a healthy cluster of the same state folder is left as it
// is, and anything left behind by a cluster that was not stopped (a killed
// session, a reboot of the processes but not of the mounts) is cleaned up
// first. `down` stops every process `up` started and removes its
// containers, mounts, network namespaces, iptables chains and cgroups.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

func main() {
	if len(os.Args) < 2 || !slices.Contains([]string{"up", "down", "status"}, os.Args[1]) {
		fmt.Fprintln(os.Stderr, "usage: cluster up -state DIR -kube DIR -cni DIR -pause-image REF -coredns-image REF IMAGE.tar...\n       cluster status -state DIR -kube DIR\n       cluster down -state DIR")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("cluster "+os.Args[1], flag.ExitOnError)
	state := fs.String("state", "bin/cluster", "the folder that holds the cluster's kubeconfig, certificates, data and logs")
	kube := fs.String("kube", "", "the folder with kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl and etcd")
	cni := fs.String("cni", "", "the folder with the CNI plugins ptp, host-local and loopback")
	pause := fs.String("pause-image", "", "the name of the pause image among the archives")
	coredns := fs.String("coredns-image", "", "the name of the CoreDNS image among the archives")
	_ = fs.Parse(os.Args[2:])
	abs, err := filepath.Abs(*state)
	switch {
	case err != nil:
	case os.Args[1] == "up":
		err = up(config{state: abs, kube: mustAbs(*kube), cni: mustAbs(*cni), pauseImage: *pause, corednsImage: *coredns, images: fs.Args()})
	case os.Args[1] == "status":
		if !healthy(config{state: abs, kube: mustAbs(*kube)}) {
			fmt.Printf("no cluster of %s is running\n", abs)
			os.Exit(1)
		}
		fmt.Printf("the cluster of %s is running: export KUBECONFIG=%s\n", abs, filepath.Join(abs, "kubeconfig"))
	default:
		err = down(abs)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cluster %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func mustAbs(p string) string {
	if p == "" {
		fmt.Fprintln(os.Stderr, "cluster: -kube and -cni are required")
		os.Exit(2)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(2)
	}
	return abs
}
