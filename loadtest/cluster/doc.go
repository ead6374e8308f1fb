// Package cluster starts and manages the processes a load test runs
// against on this machine: productsd replicas (which it can kill, stop and
// restart, one at a time, to inject faults), a private redis-server, and a
// throwaway PostgreSQL database; and it runs productsd's migrate and seed
// commands.
//
// Every child is started with exec.CommandContext: cancelling the context
// (or [Process.Stop]) sends SIGTERM, and WaitDelay sends SIGKILL if the
// child has not exited a few seconds later. On Linux a child is also
// killed if the load generator itself dies. Replicas listen on
// 127.0.0.1:0 and the cluster reads the address each one prints.
package cluster
