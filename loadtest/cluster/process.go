package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"time"
)

// StopDelay is how long a child has, after SIGTERM, before it is killed.
const StopDelay = 5 * time.Second

// Process is a running child process.
type Process struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	out    *tailBuffer
	exited chan struct{} // closed when the process has exited
	err    error         // Wait's result, valid after exited
}

// Start starts name with args and env (added to this process's
// environment) as a child that receives SIGTERM when ctx ends or Stop is
// called, and SIGKILL StopDelay later. Its output goes to output (nil
// keeps only the last few KB, for error messages) and to watch, when set,
// one line at a time.
func Start(ctx context.Context, name string, args, env []string, output io.Writer, watch func(line string)) (*Process, error) {
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return terminate(cmd.Process) }
	cmd.WaitDelay = StopDelay
	cmd.SysProcAttr = childAttr()
	cmd.Env = append(os.Environ(), env...)
	p := &Process{cmd: cmd, cancel: cancel, out: &tailBuffer{max: 8 << 10}, exited: make(chan struct{})}
	var w io.Writer = p.out
	if output != nil {
		w = io.MultiWriter(p.out, output)
	}
	if watch != nil {
		w = io.MultiWriter(w, &lineWriter{fn: watch})
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("cluster: start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		cancel()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is the process's exit error, once it has exited.
func (p *Process) Err() error {
	select {
	case <-p.exited:
		return p.err
	default:
		return nil
	}
}

// Output is the last few KB the process wrote.
func (p *Process) Output() string { return p.out.String() }

// Stop sends SIGTERM (SIGKILL StopDelay later) and waits for the exit. It
// is safe to call more than once and after the process exited.
func (p *Process) Stop() {
	p.cancel()
	<-p.exited
}

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// lineWriter calls fn with every complete line written to it.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func(string)
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.fn(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 { // no newline in sight: drop it
		l.buf = l.buf[:0]
	}
	return len(b), nil
}

var listenRE = regexp.MustCompile(`listening on (http://\S+)`)

// StartServer starts a child that prints "... listening on http://HOST:PORT"
// once it accepts connections, and returns it with that URL.
func StartServer(ctx context.Context, name string, args, env []string, output io.Writer, timeout time.Duration) (*Process, string, error) {
	urls := make(chan string, 1)
	p, err := Start(ctx, name, args, env, output, func(line string) {
		if m := listenRE.FindStringSubmatch(line); m != nil {
			select {
			case urls <- m[1]:
			default:
			}
		}
	})
	if err != nil {
		return nil, "", err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case u := <-urls:
		return p, u, nil
	case <-p.exited:
		return nil, "", fmt.Errorf("cluster: %s exited before listening: %v\n%s", name, p.err, p.Output())
	case <-t.C:
		p.Stop()
		return nil, "", fmt.Errorf("cluster: %s did not print its address within %v\n%s", name, timeout, p.Output())
	case <-ctx.Done():
		p.Stop()
		return nil, "", errors.Join(ctx.Err(), errors.New(p.Output()))
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex // guards buf
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
