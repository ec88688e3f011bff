package venv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

// installer knows how to create a venv and install into it. Commands are
// argument lists: nothing runs through a shell.
type installer struct {
	name    string
	create  func(python, dir string) []string
	install func(venvPython string, files []string, s Spec) [][]string
}

// chooseInstaller prefers uv (fast, and links packages from its cache
// instead of copying them): from PATH, or onnx2pt's own copy in ToolsDir,
// installed there once. pip is the fallback, but not for an interruption.
func chooseInstaller(ctx context.Context, s Spec, logPath string) (installer, error) {
	if s.Installer == "pip" {
		return pipInstaller(), nil
	}
	uv, err := findUV(ctx, s, logPath)
	if ctx.Err() != nil {
		return installer{}, fmt.Errorf("interrupted while looking for uv (%v)", ctx.Err())
	}
	if err != nil {
		s.Log.Warnf("uv unavailable (%s); installing with pip", lastLine(err))
		return pipInstaller(), nil
	}
	return uvInstaller(uv), nil
}

func uvInstaller(uv string) installer {
	return installer{
		name: "uv",
		// --seed adds pip, which users expect in a virtualenv.
		create: func(python, dir string) []string {
			return []string{uv, "venv", "--quiet", "--seed", "--allow-existing", "--python", python, dir}
		},
		install: func(venvPython string, files []string, s Spec) [][]string {
			argv := []string{uv, "pip", "install", "--python", venvPython, "-r", files[0]}
			if len(files) > 1 {
				argv = append(argv, "-c", files[1])
			}
			if s.Offline {
				argv = append(argv, "--offline")
			}
			return [][]string{append(argv, s.InstallArgs...)}
		},
	}
}

func pipInstaller() installer {
	return installer{
		name: "pip",
		create: func(python, dir string) []string {
			return []string{python, "-m", "venv", dir}
		},
		install: func(venvPython string, files []string, s Spec) [][]string {
			argv := []string{venvPython, "-m", "pip", "install", "--disable-pip-version-check", "-r", files[0]}
			if len(files) > 1 {
				argv = append(argv, "-c", files[1])
			}
			if s.Offline {
				argv = append(argv, "--no-index")
			}
			return [][]string{
				// A venv made by uv has no pip.
				{venvPython, "-m", "ensurepip", "--default-pip"},
				append(argv, s.InstallArgs...),
			}
		},
	}
}

// findUV returns a uv executable: from PATH, or from ToolsDir, where it is
// installed (with pip, from the package index) the first time.
func findUV(ctx context.Context, s Spec, logPath string) (string, error) {
	if uv, err := exec.LookPath("uv"); err == nil {
		return uv, nil
	}
	if s.ToolsDir == "" {
		return "", errors.New("not on PATH")
	}
	dir := filepath.Join(s.ToolsDir, "uv")
	uv := filepath.Join(dir, "bin", "uv")
	// A copy is reinstalled only when it positively does not work: a
	// cancelled check says nothing, and other runs may be using it.
	runs := func() (bool, error) {
		err := exec.CommandContext(ctx, uv, "--version").Run()
		if ctx.Err() != nil {
			return false, fmt.Errorf("interrupted while checking %s (%v)", uv, ctx.Err())
		}
		return err == nil, nil
	}
	if ok, err := runs(); err != nil {
		return "", err
	} else if ok {
		return uv, nil
	}
	if s.Offline {
		return "", errors.New("not on PATH, and offline mode cannot download it")
	}
	unlock, err := lock(dir+".lock", s.Log)
	if err != nil {
		return "", err
	}
	defer unlock()
	if ok, err := runs(); err != nil {
		return "", err
	} else if ok {
		return uv, nil // installed by another run while we waited
	}
	s.Log.Infof("Installing uv into %s (once, for all virtualenvs)", dir)
	os.RemoveAll(dir) // a half-made copy from an interrupted run
	if err := run(ctx, s.Log, logPath, "uv", s.Python, "-m", "venv", dir); err != nil {
		return "", err
	}
	py := filepath.Join(dir, "bin", "python")
	if err := run(ctx, s.Log, logPath, "uv", py, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "uv"); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return uv, nil
}

// cmdError is a failed command with the tail of its output, where
// installers say what went wrong.
type cmdError struct {
	err    error
	output []string
}

func (e *cmdError) Error() string {
	if n := len(e.output); n > 0 {
		return e.output[n-1] + ": " + e.err.Error()
	}
	return e.err.Error()
}

func (e *cmdError) Unwrap() error { return e.err }

// lastLine is the last line a failed command printed, or the error.
func lastLine(err error) string {
	var ce *cmdError
	if errors.As(err, &ce) && len(ce.output) > 0 {
		return ce.output[len(ce.output)-1]
	}
	return err.Error()
}

const keepLines = 200

// run runs a command without a shell, streaming its output into the log
// (and into logPath, when given).
func run(ctx context.Context, log logrus.FieldLogger, logPath, tag string, argv ...string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "PIP_NO_INPUT=1", "UV_NO_PROGRESS=1")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var sink io.Writer = io.Discard
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		fmt.Fprintf(f, "$ %s\n", strings.Join(argv, " "))
		sink = f
	}
	var tail []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(sink, line)
			if t := strings.TrimSpace(line); t != "" {
				if tail = append(tail, t); len(tail) > keepLines {
					tail = tail[1:]
				}
				log.WithField("step", tag).Info(t)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Run()
	pw.Close()
	wg.Wait()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted (%v)", ctx.Err())
	}
	return &cmdError{err: err, output: tail}
}

var (
	networkTrouble = []string{
		"failed to fetch", "dns error", "name resolution", "connection refused", "connection reset",
		"network is unreachable", "could not connect", "max retries exceeded", "connecterror",
		"timed out", "no route to host", "ssl",
	}
	offlineTrouble = []string{"offline", "network connectivity is disabled", "not found in the cache"}
	missingWheel   = []regexp.Regexp{
		*regexp.MustCompile(`because (?:only )?([a-z0-9._-]+)(?:[<>=!~][^ ]*)? has no (?:wheels|versions|installable)`),
		*regexp.MustCompile(`no matching distribution found for ([a-z0-9._-]+)`),
		*regexp.MustCompile(`could not find a version that satisfies the requirement ([a-z0-9._-]+)`),
		*regexp.MustCompile(`because ([a-z0-9._-]+) was not found in the package registry`),
	}
)

// explain turns an installer's failure into one line a user can act on.
func explain(err error, s Spec) string {
	var ce *cmdError
	if !errors.As(err, &ce) {
		return err.Error()
	}
	text := strings.ToLower(strings.Join(ce.output, "\n"))
	has := func(words []string) bool {
		for _, w := range words {
			if strings.Contains(text, w) {
				return true
			}
		}
		return false
	}
	if strings.Contains(text, "no space left on device") {
		return "the disk is full"
	}
	var pkg string
	for _, re := range missingWheel {
		if m := re.FindStringSubmatch(text); m != nil {
			pkg = m[1]
			break
		}
	}
	switch {
	case s.Offline && (pkg != "" || has(offlineTrouble)):
		if pkg == "" {
			pkg = "a required package"
		}
		return fmt.Sprintf("offline mode, and %s is not installed or cached: run once online, or unset python.offline", pkg)
	case pkg != "":
		return fmt.Sprintf("no %s release installs on Python %s on %s/%s", pkg, venvVersion(s.Dir), runtime.GOOS, runtime.GOARCH)
	}
	switch {
	case has(networkTrouble):
		return "cannot reach the package index (check the network or proxy settings; python.offline uses only cached packages)"
	case strings.Contains(text, "no solution found"):
		return "the requirements conflict with each other: " + lastLine(err)
	}
	return lastLine(err)
}
