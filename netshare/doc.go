// Package netshare will own the listening sockets that workers share, so
// that restarts and rollouts never refuse or drop a connection. It is not
// implemented yet: manifests validate schedulingPolicy, and nothing else
// uses it.
package netshare
