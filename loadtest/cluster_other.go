//go:build !linux

package loadtest

import (
	"os"
	"syscall"
)

func childAttr() *syscall.SysProcAttr { return nil }

func terminate(p *os.Process) error { return p.Signal(os.Interrupt) }
