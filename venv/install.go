package venv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
)

type installer struct {
	name    string
	install func(reqFile string) []string // command line, no shell
}

// findInstaller prefers uv (fast, installs from its cache by linking):
// from PATH, from the venv, or installed into the venv with pip. pip is the
// fallback.
func findInstaller(ctx context.Context, s Spec, env *Env, logPath string) installer {
	if s.Installer == "pip" {
		return pip(env)
	}
	uv, err := exec.LookPath("uv")
	if err != nil {
		uv = filepath.Join(env.Dir, "bin", "uv")
		if _, err := os.Stat(uv); err != nil {
			s.Log.Info("Installing uv into the virtualenv")
			if err := run(ctx, s.Log, logPath, "pip", env.Python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "uv"); err != nil {
				s.Log.Warnf("uv unavailable (%s); installing with pip", err)
				return pip(env)
			}
		}
	}
	return installer{name: "uv", install: func(req string) []string {
		return []string{uv, "pip", "install", "--python", env.Python, "-r", req}
	}}
}

func pip(env *Env) installer {
	return installer{name: "pip", install: func(req string) []string {
		return []string{env.Python, "-m", "pip", "install", "--disable-pip-version-check", "-r", req}
	}}
}

// run runs a command without a shell, streaming its output into the log
// (and into logPath, when given). The error names the command's
// last line of output, which is where installers say what went wrong.
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
	var last string
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
				last = t
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
	if last != "" {
		return fmt.Errorf("%s: %v", last, err)
	}
	return err
}
