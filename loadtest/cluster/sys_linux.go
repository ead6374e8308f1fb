package cluster

import (
	"os"
	"syscall"
)

// childAttr makes the kernel kill a replica if the load generator dies
// without stopping it, so no process is left behind even after SIGKILL.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
