package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/onnx2pt/onnx2pt"
	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/convert"
	"github.com/onnx2pt/onnx2pt/internal/progress"
	"github.com/onnx2pt/onnx2pt/pyembed"
	"github.com/onnx2pt/onnx2pt/python"
	"github.com/onnx2pt/onnx2pt/venv"
)

// pythonModules must import in the virtualenv for onnx2pt to work.
var pythonModules = []string{"torch", "onnx", "onnx2torch", "onnxruntime", "numpy"}

// provision makes sure the virtualenv is ready.
func (a *app) provision(ctx context.Context, cfg *config.Config) (*venv.Env, error) {
	p := cfg.Python
	interpreter := p.Interpreter
	if interpreter == "" {
		interpreter = pyembed.BuildInterpreter()
	}
	spec := venv.Spec{
		Dir:              p.Venv,
		Python:           interpreter,
		Requirements:     onnx2pt.Requirements,
		RequirementsName: "requirements.txt (built in)",
		Lock:             onnx2pt.Lock,
		Imports:          pythonModules,
		Installer:        strings.TrimPrefix(p.Installer, "auto"),
		InstallArgs:      p.InstallArgs,
		Offline:          p.Offline,
		CheckPython:      pyembed.CheckInterpreter,
		Log:              a.log,
	}
	if p.Requirements != "" {
		data, err := os.ReadFile(p.Requirements)
		if err != nil {
			return nil, withCode(exitUsage, fmt.Errorf("python.requirements: %v", err))
		}
		spec.Requirements, spec.RequirementsName, spec.Lock = data, p.Requirements, nil
	}
	if p.Lock != "" {
		data, err := os.ReadFile(p.Lock)
		if err != nil {
			return nil, withCode(exitUsage, fmt.Errorf("python.lock: %v", err))
		}
		spec.Lock = data
	}
	if cache, err := os.UserCacheDir(); err == nil {
		spec.ToolsDir = filepath.Join(cache, "onnx2pt")
	}
	if progress.IsTerminal(a.stderr) && a.v.GetString("log.format") != "json" && !a.verbose {
		pf := &provisionView{inner: a.log.Formatter, out: a.stderr}
		plog := &logrus.Logger{Out: pf, Formatter: pf, Hooks: a.log.Hooks, Level: a.log.Level, ExitFunc: os.Exit}
		spec.Log = plog
		defer pf.stop()
	}
	env, err := venv.Ensure(ctx, spec)
	return env, withCode(exitEnvironment, err)
}

// provisionView shows an installer's output lines (log entries with a
// "step" field) on a spinner instead of as log lines; the spinner starts
// with the first such line, so a ready virtualenv shows nothing. It is
// the provisioning logger's formatter and its output.
type provisionView struct {
	inner   logrus.Formatter
	out     io.Writer
	mu      sync.Mutex
	display *progress.Provisioning
}

func (v *provisionView) Format(e *logrus.Entry) ([]byte, error) {
	if _, ok := e.Data["step"]; !ok || e.Level <= logrus.WarnLevel {
		return v.inner.Format(e)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.display == nil {
		v.display = progress.NewProvisioning(v.out, progress.Options{Color: colorWanted()})
	}
	v.display.Line(e.Message)
	return nil, nil
}

// Write prints other log lines above the spinner once it is there.
func (v *provisionView) Write(p []byte) (int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.display != nil {
		return v.display.Writer().Write(p)
	}
	return v.out.Write(p)
}

func (v *provisionView) stop() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.display != nil {
		v.display.Stop()
	}
}

// configuredSession loads the settings, provisions the virtualenv and
// starts a session in it.
func (a *app) configuredSession(ctx context.Context) (*convert.Session, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	env, err := a.provision(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return a.startSession(ctx, env)
}

// startSession starts the embedded interpreter in the virtualenv and opens
// a conversion session.
func (a *app) startSession(ctx context.Context, env *venv.Env) (*convert.Session, error) {
	helpers, err := python.Install(filepath.Join(env.Dir, "onnx2pt"))
	if err != nil {
		return nil, withCode(exitEnvironment, err)
	}
	if err := python.Expose(env.Dir, helpers); err != nil {
		a.log.Warnf("The venv's python will not load checkpoints that use onnx2pt's converters: %v", err)
	}
	a.log.Debugf("Starting Python %s in %s", pyembed.LinkedVersion(), env.Dir)
	ip, err := pyembed.Start(pyembed.Options{Venv: env.Dir, Path: []string{helpers}})
	if err != nil {
		return nil, withCode(exitEnvironment, err)
	}
	stopInterrupts := ip.InterruptOn(ctx)
	sess, err := convert.Open(ip, env.ID, toolVersion(), a.log)
	stopInterrupts()
	if ctx.Err() != nil {
		if sess != nil {
			sess.Close()
		}
		return nil, withCode(exitInterrupted, errors.New("interrupted while starting Python"))
	}
	if err != nil {
		return nil, withCode(exitEnvironment, err)
	}
	return sess, nil
}
