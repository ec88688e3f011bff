package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/onnx2pt/onnx2pt"
	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/convert"
	"github.com/onnx2pt/onnx2pt/pyembed"
	"github.com/onnx2pt/onnx2pt/python"
	"github.com/onnx2pt/onnx2pt/venv"
)

// pythonModules must import in the virtualenv for onnx2pt to work.
var pythonModules = []string{"torch", "onnx", "onnx2torch", "onnxruntime", "numpy"}

// provision makes sure the virtualenv is ready.
func (a *app) provision(ctx context.Context, cfg *config.Config) (*venv.Env, error) {
	interpreter := cfg.Python.Interpreter
	if interpreter == "" {
		interpreter = pyembed.BuildInterpreter()
	}
	req, reqName := onnx2pt.Requirements, "requirements.txt (built in)"
	if cfg.Python.Requirements != "" {
		data, err := os.ReadFile(cfg.Python.Requirements)
		if err != nil {
			return nil, withCode(exitUsage, fmt.Errorf("python.requirements: %v", err))
		}
		req, reqName = data, cfg.Python.Requirements
	}
	env, err := venv.Ensure(ctx, venv.Spec{
		Dir:              cfg.Python.Venv,
		Python:           interpreter,
		Requirements:     req,
		RequirementsName: reqName,
		Imports:          pythonModules,
		Log:              a.log,
	})
	return env, withCode(exitEnvironment, err)
}

// startSession provisions the virtualenv, starts the embedded interpreter
// in it and opens a conversion session.
func (a *app) startSession(ctx context.Context, cfg *config.Config) (*convert.Session, error) {
	env, err := a.provision(ctx, cfg)
	if err != nil {
		return nil, err
	}
	helpers, err := python.Install(filepath.Join(env.Dir, "onnx2pt"))
	if err != nil {
		return nil, withCode(exitEnvironment, err)
	}
	a.log.Debugf("Starting Python %s in %s", pyembed.LinkedVersion(), env.Dir)
	ip, err := pyembed.Start(pyembed.Options{Venv: env.Dir, Path: []string{helpers}})
	if err != nil {
		return nil, withCode(exitEnvironment, err)
	}
	sess, err := convert.Open(ip, toolVersion(), a.log)
	if err != nil {
		return nil, withCode(exitEnvironment, err)
	}
	return sess, nil
}
