// Package nodecompat holds the Node cluster parity harness: the worker side
// of Node's own test-cluster-* tests, rewritten as cluster worker scripts
// (testdata/cases), each run under two primaries, paddock and Node's own
// cluster module, so that what paddock gets wrong is measured against what
// Node does on the same machine. It has no code for other packages: the
// harness is its test (go test ./internal/nodecompat; make test runs the
// cases expected to pass under paddock, make test-node all of them).
package nodecompat
