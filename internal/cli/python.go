package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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
	spec, why, err := a.venvSpec(cfg)
	if err != nil {
		return nil, err
	}
	a.log.Debugf("Virtualenv %s: %s", spec.Dir, why)
	if progress.IsTerminal(a.stderr) && a.v.GetString("log.format") != "json" && !a.verbose {
		pf := &provisionView{inner: a.log.Formatter, out: a.stderr}
		plog := &logrus.Logger{Out: pf, Formatter: pf, Hooks: a.log.Hooks, Level: a.log.Level, ExitFunc: os.Exit}
		spec.Log = plog
		defer pf.stop()
	}
	env, err := venv.Ensure(ctx, spec)
	return env, withCode(exitEnvironment, err)
}

// venvSpec says what virtualenv cfg asks for, where it is and why there:
// python.venv when something sets it, else the user's own for this
// interpreter and requirement set (see userVenv).
func (a *app) venvSpec(cfg *config.Config) (venv.Spec, string, error) {
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
			return spec, "", withCode(exitUsage, fmt.Errorf("python.requirements: %v", err))
		}
		spec.Requirements, spec.RequirementsName, spec.Lock = data, p.Requirements, nil
	}
	if p.Lock != "" {
		data, err := os.ReadFile(p.Lock)
		if err != nil {
			return spec, "", withCode(exitUsage, fmt.Errorf("python.lock: %v", err))
		}
		spec.Lock = data
	}
	cache, cacheErr := os.UserCacheDir()
	if cacheErr == nil {
		spec.ToolsDir = filepath.Join(cache, "onnx2pt")
	}
	why := "python.venv, from " + a.venvSource()
	if spec.Dir == "" {
		if cacheErr != nil {
			return spec, "", withCode(exitUsage, fmt.Errorf("python.venv is not set and there is no user cache folder for the default (%v): set --venv", cacheErr))
		}
		spec.Dir = userVenv(spec.ToolsDir, spec)
		why = "python.venv is not set: the one for this user, interpreter and requirement set, shared by every project"
	}
	return spec, why, nil
}

// venvSource says where python.venv was set.
func (a *app) venvSource() string {
	switch {
	case a.flagSet("python.venv"):
		return "--venv"
	case os.Getenv(config.EnvPrefix+"_PYTHON_VENV") != "":
		return config.EnvPrefix + "_PYTHON_VENV"
	}
	return "the config file"
}

// userVenv is the default virtualenv: one per user (under the cache
// folder), interpreter and requirement set, as pipx and uv's tool
// environments do, so running onnx2pt from any directory or project uses
// and shares one, and a change of requirements or Python makes another.
func userVenv(toolsDir string, spec venv.Spec) string {
	h := sha256.New()
	python := spec.Python
	if found, err := exec.LookPath(python); err == nil {
		python = found
	}
	if real, err := filepath.EvalSymlinks(python); err == nil {
		python = real
	}
	for _, part := range [][]byte{[]byte(python), []byte(pyembed.LinkedVersion()), spec.Requirements, spec.Lock} {
		fmt.Fprintf(h, "%d:%s\n", len(part), part)
	}
	return filepath.Join(toolsDir, "venvs", "py"+pyembed.LinkedVersion()+"-"+hex.EncodeToString(h.Sum(nil))[:12])
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
// starts a session in it, with the user's converters loaded.
func (a *app) configuredSession(ctx context.Context) (*convert.Session, error) {
	return a.pythonSession(ctx, true)
}

// pythonSession is configuredSession, with the user's converters loaded
// or not.
func (a *app) pythonSession(ctx context.Context, withConverters bool) (*convert.Session, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	if withConverters {
		if err := cfg.ValidateConverters(); err != nil {
			return nil, err
		}
	}
	env, err := a.provision(ctx, cfg)
	if err != nil {
		return nil, err
	}
	sess, err := a.startSession(ctx, env)
	if err != nil || !withConverters {
		return sess, err
	}
	if err := loadConverters(ctx, sess, cfg.Converters, a.log); err != nil {
		sess.Close()
		if ctx.Err() != nil {
			return nil, withCode(exitInterrupted, errors.New("interrupted while loading the user converters"))
		}
		return nil, withCode(exitEnvironment, err)
	}
	return sess, nil
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
