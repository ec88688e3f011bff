// Package venv provisions the Python virtualenv onnx2pt runs in: it creates
// the environment, installs the requirements with uv (or pip), and records
// a stamp once everything succeeded, so an unchanged environment is
// recognised without starting Python and an interrupted install is never
// mistaken for a finished one.
package venv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/onnx2pt/onnx2pt/internal/pyvenv"
)

// Spec says what environment is wanted.
type Spec struct {
	// Dir is the virtualenv directory.
	Dir string
	// Python is the interpreter that creates it: a path or a name on PATH.
	Python string
	// Requirements is the content of the requirements file to install, and
	// RequirementsName where it came from (for messages).
	Requirements     []byte
	RequirementsName string
	// Lock, when not empty, pins versions: the requirements are installed
	// with it as constraints (pip's and uv's -c).
	Lock []byte
	// Imports are modules that must be importable after the install.
	Imports []string
	// Installer is "uv", "pip", or "" to prefer uv and fall back to pip.
	Installer string
	// InstallArgs are extra arguments for the installer.
	InstallArgs []string
	// Offline installs only from the local package cache (uv) or not at
	// all (pip); a ready environment is used as it is.
	Offline bool
	// ToolsDir caches onnx2pt's own copy of uv when none is on PATH.
	ToolsDir string
	// CheckPython, if set, vets the interpreter before anything is
	// installed with it (only when provisioning is needed).
	CheckPython func(ctx context.Context, python string) error
	Log         logrus.FieldLogger
}

// Env is a ready virtualenv.
type Env struct {
	Dir    string
	Python string // the venv's python executable
	// Installed is true when this call created or updated the environment.
	Installed bool
	// ID identifies what the environment was provisioned from (a hash of
	// its stamp): it changes whenever the installed packages may have.
	ID string
}

// stampName marks a fully provisioned environment. It is written last and
// atomically, and removed before any change, so its presence means ready.
const stampName = ".onnx2pt-ready.json"

// stamp is what an environment was provisioned from. Equal stamps mean
// nothing needs doing; it is computed from file contents and metadata only,
// so checking it does not start Python.
type stamp struct {
	Format       int    `json:"format"`
	Requirements string `json:"requirements_sha256"`
	Lock         string `json:"lock_sha256"`
	InstallArgs  string `json:"install_args"`
	Python       string `json:"python"`
	PythonID     string `json:"python_id"`
	Platform     string `json:"platform"`
}

const stampFormat = 2

// Ensure makes sure the environment described by s exists and is complete,
// provisioning it if needed. Concurrent calls on the same Dir (in this or
// other processes) wait for each other; only one installs.
func Ensure(ctx context.Context, s Spec) (*Env, error) {
	if s.Log == nil {
		s.Log = logrus.StandardLogger()
	}
	dir, err := filepath.Abs(s.Dir)
	if err != nil {
		return nil, err
	}
	s.Dir = dir
	want, err := wantedStamp(s)
	if err != nil {
		return nil, err
	}
	env := &Env{Dir: dir, Python: filepath.Join(dir, "bin", "python"), ID: want.id()}
	if readStamp(dir) == want {
		return env, nil
	}

	unlock, err := lock(dir+".lock", s.Log)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another run may have finished provisioning while we waited.
	have := readStamp(dir)
	if have == want {
		return env, nil
	}
	if s.CheckPython != nil {
		if err := s.CheckPython(ctx, s.Python); err != nil {
			return nil, err
		}
	}
	s.Log.Infof("Provisioning virtualenv %s: %s", s.Dir, reason(ctx, have, want, s))
	if err := provision(ctx, s, env); err != nil {
		return nil, err
	}
	if err := writeStamp(dir, want); err != nil {
		return nil, err
	}
	env.Installed = true
	s.Log.Infof("Virtualenv %s is ready", s.Dir)
	return env, nil
}

func wantedStamp(s Spec) (stamp, error) {
	path, err := exec.LookPath(s.Python)
	if err != nil {
		return stamp{}, fmt.Errorf("python interpreter %q not found: install Python or set python.interpreter", s.Python)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return stamp{}, err
	}
	st, err := os.Stat(real)
	if err != nil {
		return stamp{}, err
	}
	return stamp{
		Format:       stampFormat,
		Requirements: sha256Hex(s.Requirements),
		Lock:         sha256Hex(s.Lock),
		InstallArgs:  strings.Join(s.InstallArgs, " "),
		Python:       real,
		// Size and modification time change when the interpreter is
		// upgraded in place; reading them costs no process start.
		PythonID: fmt.Sprintf("%d-%d", st.Size(), st.ModTime().UnixNano()),
		Platform: runtime.GOOS + "/" + runtime.GOARCH,
	}, nil
}

func (st stamp) id() string {
	data, _ := json.Marshal(st)
	return sha256Hex(data)[:16]
}

func sha256Hex(data []byte) string {
	if len(data) == 0 {
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func readStamp(dir string) stamp {
	var st stamp
	data, err := os.ReadFile(filepath.Join(dir, stampName))
	if err != nil || json.Unmarshal(data, &st) != nil {
		return stamp{}
	}
	if _, err := os.Stat(filepath.Join(dir, "bin", "python")); err != nil {
		return stamp{}
	}
	return st
}

func writeStamp(dir string, st stamp) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stampName+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stampName))
}

// reason says in a few words why the environment is (re)provisioned.
func reason(ctx context.Context, have, want stamp, s Spec) string {
	switch {
	case have == stamp{}:
		return "not provisioned yet, or the last install did not finish"
	case have.Format != want.Format:
		return "onnx2pt's stamp format changed"
	case have.Python != want.Python || have.PythonID != want.PythonID:
		return fmt.Sprintf("python %s → %s", venvVersion(s.Dir), pythonVersion(ctx, s.Python))
	case have.Platform != want.Platform:
		return fmt.Sprintf("platform %s → %s", have.Platform, want.Platform)
	case have.Requirements != want.Requirements:
		return s.RequirementsName + " changed"
	case have.Lock != want.Lock:
		return "the lock file changed"
	default:
		return "installer arguments changed"
	}
}

// venvVersion is the Python version recorded in the venv, or "?".
func venvVersion(dir string) string {
	if v, err := pyvenv.Version(dir); err == nil {
		return v
	}
	return "?"
}

func pythonVersion(ctx context.Context, python string) string {
	out, err := exec.CommandContext(ctx, python, "-I", "-c", "import platform; print(platform.python_version())").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

// lock takes an exclusive lock on path, telling the user when it has to wait.
func lock(path string, log logrus.FieldLogger) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		log.Infof("Waiting for another onnx2pt run to finish provisioning (%s)", path)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// provision (re)creates the venv if it is missing or made by another
// Python, then installs the requirements into it. An interrupted install
// is repaired in place: the installer completes what is missing.
func provision(ctx context.Context, s Spec, env *Env) error {
	os.Remove(filepath.Join(s.Dir, stampName))
	logPath := s.Dir + ".log"
	os.Remove(logPath)
	inst := chooseInstaller(ctx, s, logPath)
	if err := create(ctx, s, env, inst, logPath); err != nil {
		return err
	}
	files := []string{filepath.Join(s.Dir, "onnx2pt-requirements.txt")}
	if err := os.WriteFile(files[0], s.Requirements, 0o644); err != nil {
		return err
	}
	if len(s.Lock) > 0 {
		files = append(files, filepath.Join(s.Dir, "onnx2pt-requirements.lock"))
		if err := os.WriteFile(files[1], s.Lock, 0o644); err != nil {
			return err
		}
	}
	s.Log.Infof("Installing %s with %s (log: %s)", s.RequirementsName, inst.name, logPath)
	for _, argv := range inst.install(env.Python, files, s) {
		if err := run(ctx, s.Log, logPath, inst.name, argv...); err != nil {
			return fmt.Errorf("installing %s into %s failed: %s (full output: %s)", s.RequirementsName, s.Dir, explain(err, s), logPath)
		}
	}
	if len(s.Imports) > 0 {
		if err := run(ctx, s.Log, logPath, "check", env.Python, "-I", "-c", importCheck, strings.Join(s.Imports, ",")); err != nil {
			return fmt.Errorf("virtualenv %s: %s after the install (full output: %s)", s.Dir, lastLine(err), logPath)
		}
	}
	return nil
}

// importCheck finds each module without importing it (importing torch
// alone takes seconds): enough to catch a package that did not install.
const importCheck = `
import importlib.util, sys
missing = [m for m in sys.argv[1].split(",") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit("cannot import " + ", ".join(missing))
`

// create makes the virtualenv unless one made by this interpreter is
// already there.
func create(ctx context.Context, s Spec, env *Env, inst installer, logPath string) error {
	if _, err := os.Stat(filepath.Join(s.Dir, "pyvenv.cfg")); err == nil {
		if sameInterpreter(ctx, s.Python, env.Python) {
			return nil
		}
		s.Log.Infof("Recreating %s: it was made by another Python", s.Dir)
		if err := os.RemoveAll(s.Dir); err != nil {
			return err
		}
	} else if entries, err := os.ReadDir(s.Dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not a virtualenv: remove it or set python.venv to another directory", s.Dir)
	}
	if err := run(ctx, s.Log, logPath, "venv", inst.create(s.Python, s.Dir)...); err != nil {
		return fmt.Errorf("creating virtualenv %s with %s failed: %s", s.Dir, s.Python, lastLine(err))
	}
	return nil
}

// sameInterpreter reports whether the venv's python runs the same
// executable as python.
func sameInterpreter(ctx context.Context, python, venvPython string) bool {
	const code = "import sys, os; print(os.path.realpath(getattr(sys, '_base_executable', sys.executable)))"
	a, err1 := exec.CommandContext(ctx, python, "-I", "-c", code).Output()
	b, err2 := exec.CommandContext(ctx, venvPython, "-I", "-c", code).Output()
	return err1 == nil && err2 == nil && strings.TrimSpace(string(a)) == strings.TrimSpace(string(b))
}
