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
	"sort"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/onnx2pt/onnx2pt/venv/pyvenv"
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
	// ID identifies the environment: a hash of its stamp (what it was
	// provisioned from) and of the distributions installed in it, so it
	// changes when a package is installed, upgraded or removed by hand too.
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
	env := &Env{Dir: dir, Python: filepath.Join(dir, "bin", "python")}
	if readStamp(dir) == want {
		env.ID = envID(want, dir)
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
		env.ID = envID(want, dir)
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
	env.ID = envID(want, dir)
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

// envID hashes the stamp with the distributions installed in dir. A
// package upgraded inside the venv is respected (nothing is reinstalled),
// but outputs fingerprinted with the old ID are no longer up to date.
func envID(st stamp, dir string) string {
	data, _ := json.Marshal(st)
	h := sha256.New()
	h.Write(data)
	for _, d := range installed(dir) {
		h.Write([]byte("\n" + d))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// installed lists the distributions in the venv's site-packages by the
// names of their metadata directories, which carry the name and version
// (torch-2.5.1+cpu.dist-info, six-1.16.0-py3.11.egg-info): a directory read,
// no Python start, and any install, upgrade or removal changes the list.
func installed(dir string) []string {
	// lib64 is usually a symlink to lib; the set removes the duplicates.
	sites, _ := filepath.Glob(filepath.Join(dir, "lib*", "python*", "site-packages"))
	seen := map[string]bool{}
	for _, site := range sites {
		entries, _ := os.ReadDir(site)
		for _, e := range entries {
			if name := e.Name(); strings.HasSuffix(name, ".dist-info") || strings.HasSuffix(name, ".egg-info") {
				seen[name] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
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
	inst, err := chooseInstaller(ctx, s, logPath)
	if err != nil {
		return err
	}
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
// already there, and proves that the result is a virtualenv before anything
// is installed into it. An existing venv is replaced only on positive
// evidence that another Python made it: never because a check could not
// run or was interrupted, since it may hold gigabytes of packages.
func create(ctx context.Context, s Spec, env *Env, inst installer, logPath string) error {
	if _, err := os.Stat(filepath.Join(s.Dir, "pyvenv.cfg")); err == nil {
		reuse, err := reusable(ctx, s, env)
		if err != nil || reuse {
			return err
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
	have, err := probe(ctx, env.Python)
	if ctx.Err() != nil {
		return err
	}
	if err != nil {
		return fmt.Errorf("virtualenv %s: its python does not run after creating it: %v", s.Dir, err)
	}
	return isVirtualenv(s.Dir, have)
}

// reusable reports whether the existing venv in s.Dir was made by s.Python
// (true) or positively by another Python (false, to be recreated). It
// fails when it cannot tell, or when s.Dir is not a virtualenv at all.
func reusable(ctx context.Context, s Spec, env *Env) (bool, error) {
	interrupted := func() error {
		return fmt.Errorf("interrupted while checking virtualenv %s, which was left as it is (%v)", s.Dir, ctx.Err())
	}
	want, err := probe(ctx, s.Python)
	if ctx.Err() != nil {
		return false, interrupted()
	}
	if err != nil {
		return false, fmt.Errorf("python interpreter %s does not run: %v", s.Python, err)
	}
	have, err := probe(ctx, env.Python)
	if ctx.Err() != nil {
		return false, interrupted()
	}
	if err == nil {
		// A python that runs but is not this venv's (a wrapper script,
		// a symlink into a base install) says nothing about who made the
		// directory, and installing with it would change another Python.
		if err := isVirtualenv(s.Dir, have); err != nil {
			return false, err
		}
		return have.Base == want.Base, nil
	}
	// The venv's python does not run (its base interpreter was removed or
	// upgraded, say): recreate only if pyvenv.cfg names another Python.
	if v, verr := pyvenv.Version(s.Dir); verr == nil && v != want.Version {
		return false, nil
	}
	if home, herr := pyvenv.Home(s.Dir); herr == nil && !homeHolds(home, want) {
		return false, nil
	}
	return false, fmt.Errorf("python.venv: the python of %s does not run (%v), and its pyvenv.cfg does not show that another Python made it: remove %s to have it made again, or point python.venv at another directory", s.Dir, err, s.Dir)
}

// isVirtualenv checks that dir has a pyvenv.cfg and that its python (as
// probed) is a virtualenv whose prefix is dir, so installing with it
// changes dir and nothing else.
func isVirtualenv(dir string, p pythonInfo) error {
	if _, err := os.Stat(filepath.Join(dir, "pyvenv.cfg")); err != nil {
		return fmt.Errorf("python.venv: %s is not a virtualenv (no pyvenv.cfg): point python.venv at a new directory", dir)
	}
	if p.Prefix == p.BasePrefix {
		return fmt.Errorf("python.venv: %s is not a virtualenv (its python is the base interpreter %s): point python.venv at a new directory", dir, p.Executable)
	}
	if !sameDir(p.Prefix, dir) {
		return fmt.Errorf("python.venv: %s is not a virtualenv (its python belongs to %s): point python.venv at a new directory", dir, p.Prefix)
	}
	return nil
}

// homeHolds reports whether home, the directory pyvenv.cfg says the venv's
// interpreter came from, holds the interpreter described by want. Names are
// resolved, since home is often a symlink farm (Homebrew's opt, pyenv).
func homeHolds(home string, want pythonInfo) bool {
	for _, name := range []string{"python" + pyvenv.MajorMinor(want.Version), "python3", "python"} {
		if real, err := filepath.EvalSymlinks(filepath.Join(home, name)); err == nil && real == want.Base {
			return true
		}
	}
	return false
}

// sameDir reports whether a and b name the same directory.
func sameDir(a, b string) bool {
	if ra, err := filepath.EvalSymlinks(a); err == nil {
		a = ra
	}
	if rb, err := filepath.EvalSymlinks(b); err == nil {
		b = rb
	}
	return filepath.Clean(a) == filepath.Clean(b)
}

// pythonInfo is what an interpreter says about itself.
type pythonInfo struct {
	Base       string `json:"base"`       // the base executable, resolved
	Executable string `json:"executable"` // sys.executable, resolved
	Prefix     string `json:"prefix"`
	BasePrefix string `json:"base_prefix"`
	Version    string `json:"version"`
}

const probeCode = `
import json, os, platform, sys
print(json.dumps({
    "base": os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
    "executable": os.path.realpath(sys.executable),
    "prefix": os.path.realpath(sys.prefix),
    "base_prefix": os.path.realpath(sys.base_prefix),
    "version": platform.python_version(),
}))
`

// probe runs python once to learn what it is. Its error says whether it
// was interrupted, so callers never mistake that for a broken interpreter.
func probe(ctx context.Context, python string) (pythonInfo, error) {
	var info pythonInfo
	out, err := exec.CommandContext(ctx, python, "-I", "-c", probeCode).Output()
	if ctx.Err() != nil {
		return info, fmt.Errorf("interrupted while running %s (%v)", python, ctx.Err())
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if lines := strings.Split(strings.TrimSpace(string(ee.Stderr)), "\n"); lines[len(lines)-1] != "" {
				return info, fmt.Errorf("%s: %s", err, lines[len(lines)-1])
			}
		}
		return info, err
	}
	if err := json.Unmarshal(out, &info); err != nil || info.Base == "" {
		return info, fmt.Errorf("%s printed no interpreter details", python)
	}
	return info, nil
}
