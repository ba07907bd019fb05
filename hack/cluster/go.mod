// The one-node cluster of make cluster, make demo and the end-to-end
// tests. A module of its own: the product's module never depends on it.
module github.com/stateguard/stateguard/hack/cluster

go 1.26.0
