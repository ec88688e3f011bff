// Command pybuild prepares cgo to build against a chosen CPython and runs a
// command (usually go build or go test) with the resulting environment.
//
//	go run ./cmd/pybuild [-python python3] [-out .build/python] -- go build ./...
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/onnx2pt/onnx2pt/internal/pybuild"
)

func main() {
	python := flag.String("python", envOr("PYTHON", "python3"), "interpreter to build against (name on PATH or path)")
	out := flag.String("out", ".build/python", "directory for the generated pkg-config file and header")
	compat := flag.String("compat", "pyembed/include", "directory holding pyembed's compatibility Python.h")
	doctor := flag.Bool("doctor", false, "check the interpreter, build tools and virtualenv, and say how to fix problems")
	venv := flag.String("venv", ".venv", "virtualenv to check with -doctor")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: pybuild [flags] [-- command args...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *doctor {
		os.Exit(diagnose(*python, *venv, *compat, *out))
	}
	if err := run(*python, *out, *compat, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "pybuild:", err)
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.ExitCode())
		}
		os.Exit(1)
	}
}

func run(python, out, compat string, command []string) error {
	info, err := pybuild.Probe(python)
	if err != nil {
		return err
	}
	if err := info.Check(); err != nil {
		return err
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	absCompat, err := filepath.Abs(compat)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(absCompat, "Python.h")); err != nil {
		return fmt.Errorf("compatibility header missing: %v (run from the repository root)", err)
	}
	files := pybuild.Render(info, absCompat, absOut)
	if err := files.Write(absOut); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	if len(command) == 0 {
		fmt.Printf("Python %s (%s): flags in %s, key %s\n", info.Version, info.Executable, out, files.Key())
		return nil
	}
	cflags := envOr("CGO_CFLAGS", "-O2 -g")
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"PKG_CONFIG_PATH="+absOut,
		"CGO_ENABLED=1",
		"CGO_CFLAGS="+strings.TrimSpace(cflags+" -DONNX2PT_PYKEY="+files.Key()),
		"ONNX2PT_BUILD_PYTHON="+info.Executable,
	)
	return cmd.Run()
}

// diagnose prints each finding and returns 1 if any needs fixing.
func diagnose(python, venv, compat, out string) int {
	absCompat, _ := filepath.Abs(compat)
	absOut, _ := filepath.Abs(out)
	problems := 0
	for _, f := range pybuild.Diagnose(python, venv, absCompat, absOut) {
		mark := "ok"
		if !f.OK {
			mark = "PROBLEM"
			problems++
		}
		fmt.Printf("%-8s %-12s %s\n", mark, f.Check, f.Found)
		for _, d := range f.Detail {
			fmt.Printf("%-8s %-12s %s\n", "", "", d)
		}
		if !f.OK && f.Fix != "" {
			fmt.Printf("%-8s %-12s fix: %s\n", "", "", f.Fix)
		}
	}
	if problems > 0 {
		fmt.Printf("\n%d problem(s) found\n", problems)
		return 1
	}
	return 0
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
