//go:build !linux

package cluster

import (
	"os"
	"syscall"
)

func childAttr() *syscall.SysProcAttr { return nil }

func terminate(p *os.Process) error { return p.Signal(os.Interrupt) }
