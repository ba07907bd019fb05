// Command coredns is CoreDNS with the plugins make cluster's Corefile uses:
// the kubernetes plugin answers for the cluster domain, the rest keep the
// server observable. Names outside the cluster are refused rather than
// forwarded, so nothing the cluster resolves leaves this machine.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
