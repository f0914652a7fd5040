package localrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RIEPackage is the pinned aws-lambda-rie (the AWS Lambda Runtime Interface Emulator) BuildRIE builds. It is pinned
// here rather than in go.mod, which every consumer of the module inherits.
const RIEPackage = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d"

// invokePath is where aws-lambda-rie accepts invocations.
const invokePath = "/2015-03-31/functions/function/invocations"

// BuildRIE builds RIEPackage for the host into dir and returns the binary's path. It needs the Go toolchain and
// the module proxy (or a module cache holding the version).
func BuildRIE(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "install", RIEPackage)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build aws-lambda-rie: %w\n%s", err, out)
	}
	return filepath.Join(dir, "aws-lambda-rie"), nil
}

// BuildBootstrap builds the Go package pkg (an import path or a directory, resolved in moduleDir) for the host as
// dir/bootstrap, with the flags the construct's bundler uses, and returns its path.
func BuildBootstrap(ctx context.Context, moduleDir, pkg, dir string) (string, error) {
	out := filepath.Join(dir, "bootstrap")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-tags", "lambda.norpc",
		"-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build bootstrap %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// RIEOptions configure an RIE.
type RIEOptions struct {
	// RIE is the path of the aws-lambda-rie binary (see BuildRIE). Required.
	RIE string
	// Bootstrap is the path of the function's bootstrap, built for the host (see BuildBootstrap). Required.
	Bootstrap string
	// Env is the function's environment, added to this process's (table names, AWS_ENDPOINT_URL_DYNAMODB,
	// AWS_REGION, credentials). Default: - this process's environment only.
	Env []string
	// Timeout is the function's timeout (AWS_LAMBDA_FUNCTION_TIMEOUT, whole seconds). Default: - 60 s.
	Timeout time.Duration
	// Output receives the emulator's and the function's standard output and error. Default: - discarded.
	Output io.Writer
}

// RIE runs a function's bootstrap under aws-lambda-rie on 127.0.0.1: one execution environment, as in Lambda,
// that invokes the real binary through the real Lambda Runtime API. It is an Invoker; invocations are serialized
// (one environment runs one invocation at a time). When the emulator itself has died, the next Invoke starts a new
// one, as Lambda starts a new execution environment. Its methods are safe for concurrent use.
type RIE struct {
	opts   RIEOptions
	client *http.Client

	invokeMu sync.Mutex // serializes invocations

	mu     sync.Mutex // guards the fields below
	cmd    *exec.Cmd
	url    string
	exited chan struct{}
	starts int
	closed bool
}

var _ Invoker = (*RIE)(nil)

// StartRIE starts aws-lambda-rie with the bootstrap and waits until it accepts invocations. The runtime itself
// starts on the first invocation (a cold start). Call Close when done.
func StartRIE(ctx context.Context, opts RIEOptions) (*RIE, error) {
	var errs []error
	for _, p := range []struct{ name, path string }{{"RIE", opts.RIE}, {"Bootstrap", opts.Bootstrap}} {
		if p.path == "" {
			errs = append(errs, fmt.Errorf("%s is empty", p.name))
		} else if _, err := os.Stat(p.path); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
		}
	}
	if opts.Timeout == 0 {
		opts.Timeout = defaultFunctionTimout
	}
	if opts.Timeout < time.Second {
		errs = append(errs, fmt.Errorf("timeout %v is shorter than a second", opts.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("start rie: %w", err)
	}
	if opts.Output == nil {
		opts.Output = io.Discard
	}
	e := &RIE{opts: opts, client: &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}}
	if err := e.start(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// start starts the emulator process; e.mu must not be held.
func (e *RIE) start(ctx context.Context) error {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a port taken between freePort and the bind: try again
		apiPort, err := freePort()
		if err != nil {
			return err
		}
		invokePort, err := freePort()
		if err != nil {
			return err
		}
		cmd := exec.Command(e.opts.RIE,
			"--runtime-interface-emulator-address", "127.0.0.1:"+strconv.Itoa(invokePort),
			"--runtime-api-address", "127.0.0.1:"+strconv.Itoa(apiPort),
			"--log-level", "warn",
			e.opts.Bootstrap)
		cmd.Dir = filepath.Dir(e.opts.Bootstrap)
		cmd.Env = append(append(os.Environ(), e.opts.Env...),
			"AWS_LAMBDA_FUNCTION_TIMEOUT="+strconv.Itoa(int(e.opts.Timeout/time.Second)),
			"LAMBDA_TASK_ROOT="+filepath.Dir(e.opts.Bootstrap))
		cmd.Stdout, cmd.Stderr = e.opts.Output, e.opts.Output
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Kill stops the runtime with the emulator
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start rie: %w", err)
		}
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		url := "http://127.0.0.1:" + strconv.Itoa(invokePort)
		if err := waitListening(ctx, invokePort, exited); err != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			lastErr = err
			continue
		}
		e.mu.Lock()
		e.cmd, e.url, e.exited = cmd, url, exited
		e.starts++
		e.mu.Unlock()
		return nil
	}
	return fmt.Errorf("start rie: %w", lastErr)
}

// waitListening waits (at most 10 s) until 127.0.0.1:port accepts connections.
func waitListening(ctx context.Context, port int, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("aws-lambda-rie exited before listening")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("aws-lambda-rie not listening on port %d after 10s", port)
}

// Invoke sends one invocation and returns the function's response. A function error (the handler's error, a
// runtime crash, a timeout) comes back as *FunctionError; a dead emulator as an error, after which the next Invoke
// starts a new one.
func (e *RIE) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	e.invokeMu.Lock()
	defer e.invokeMu.Unlock()
	e.mu.Lock()
	closed, exited, url := e.closed, e.exited, e.url
	e.mu.Unlock()
	if closed {
		return nil, errors.New("invoke: rie is closed")
	}
	select {
	case <-exited:
		if err := e.start(ctx); err != nil {
			return nil, fmt.Errorf("invoke: restart: %w", err)
		}
		e.mu.Lock()
		url = e.url
		e.mu.Unlock()
	default:
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+invokePath, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("invoke: %w", err)
	}
	res, err := e.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("invoke: read response: %w", err)
	}
	var fe FunctionError
	if json.Unmarshal(body, &fe) == nil && fe.Type != "" && fe.Message != "" {
		return nil, &fe
	}
	if res.StatusCode != http.StatusOK {
		return nil, &FunctionError{Type: "Invoke." + strconv.Itoa(res.StatusCode), Message: strings.TrimSpace(string(body))}
	}
	if bytes.HasPrefix(body, []byte("Task timed out")) {
		return nil, &FunctionError{Type: "Sandbox.Timedout", Message: string(body)}
	}
	return body, nil
}

// KillRuntime kills the function's runtime process (bootstrap) with SIGKILL, as a crash or an out-of-memory kill
// would; an invocation in progress fails with Runtime.ExitError and the emulator starts a new runtime on the next
// invocation, as Lambda does. It returns the number of processes killed.
func (e *RIE) KillRuntime() (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil || e.closed {
		return 0, errors.New("kill runtime: rie is not running")
	}
	pids, err := children(e.cmd.Process.Pid)
	if err != nil {
		return 0, fmt.Errorf("kill runtime: %w", err)
	}
	n := 0
	for _, pid := range pids {
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n, nil
}

// Kill kills the emulator and its runtime with SIGKILL; an invocation in progress fails, and the next Invoke
// starts a new emulator.
func (e *RIE) Kill() error {
	e.mu.Lock()
	cmd, exited := e.cmd, e.exited
	e.mu.Unlock()
	if cmd == nil {
		return errors.New("kill: rie is not running")
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("kill: aws-lambda-rie did not exit")
	}
}

// Starts returns how many times the emulator was started (1 plus the restarts after Kill).
func (e *RIE) Starts() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.starts
}

// Close stops the emulator and its runtime.
func (e *RIE) Close() error {
	e.mu.Lock()
	e.closed = true
	cmd, exited := e.cmd, e.exited
	e.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	e.client.CloseIdleConnections()
	return nil
}

// children lists the process ids whose parent is pid (from /proc: Linux only).
func children(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var out []int
	for _, ent := range entries {
		p, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) >= 2 && fields[1] == strconv.Itoa(pid) && fields[0] != "Z" {
			out = append(out, p)
		}
	}
	return out, nil
}
