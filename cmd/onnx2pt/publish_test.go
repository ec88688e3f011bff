package main

// End-to-end tests of publishing under fire: whatever stops a run while it
// moves a model's files into place (an interrupt, a killed worker, a
// killed supervisor), every file is then either all old or all new, and no
// hidden file is left.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var publishedFiles = []string{"resnet8.pt", "resnet8.state_dict.pt", "resnet8.report.json"}

// converted is a folder with resnet8.onnx converted once (checkpoint and
// state_dict), and the sha256 of each file published.
func converted(t *testing.T) (string, map[string]string) {
	t.Helper()
	dir := workdir(t)
	cfg := "artifacts: [checkpoint, state_dict]\nmodels:\n  - {input: resnet8.onnx, output: resnet8.pt}\n"
	if err := os.WriteFile(filepath.Join(dir, "onnx2pt.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := onnx2pt(t, dir, "convert", "-c", "onnx2pt.yaml"); r.code != 0 {
		t.Fatalf("first conversion: exit %d\n%s", r.code, r.stderr)
	}
	before := hashes(t, dir)
	// The next conversion's files then all differ from these.
	python(t, dir, perturbWeights)
	return dir, before
}

// perturbWeights scales resnet8.onnx's first float weight a little.
const perturbWeights = `
import onnx
from onnx import numpy_helper
m = onnx.load("resnet8.onnx")
w = next(i for i in m.graph.initializer if i.data_type == onnx.TensorProto.FLOAT)
w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * 1.001, w.name))
onnx.save(m, "resnet8.onnx")
`

func hashes(t *testing.T, dir string) map[string]string {
	t.Helper()
	h := map[string]string{}
	for _, name := range publishedFiles {
		h[name] = fileSHA256(t, filepath.Join(dir, name))
	}
	return h
}

// slowPublish starts a forced conversion whose publishing pauses at each
// step, and returns once the first previous version is kept aside: the
// publish is under way.
func slowPublish(t *testing.T, dir, tmp string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	cmd := hooked(t, dir, tmp, "convert", "-c", "onnx2pt.yaml", "--force", "-v")
	cmd.Env = append(cmd.Env, "ONNX2PT_TEST_PUBLISH_PAUSE=400ms")
	log := &lockedBuffer{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if olds, _ := filepath.Glob(filepath.Join(dir, ".resnet8.*.old-*")); len(olds) > 0 {
			return cmd, log
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("publishing never started:\n%s", log.String())
	return nil, nil
}

// checkWhole fails unless the published files are all as before or all
// new, the new report vouching for the new files, with nothing else left.
func checkWhole(t *testing.T, dir string, before map[string]string, wantNew bool, others ...string) {
	t.Helper()
	assertOnly(t, dir, append(append([]string{"resnet8.onnx", "onnx2pt.yaml"}, publishedFiles...), others...)...)
	after := hashes(t, dir)
	changed := 0
	for _, name := range publishedFiles {
		if after[name] != before[name] {
			changed++
		}
	}
	rep := readJSON(t, filepath.Join(dir, "resnet8.report.json"))
	out := rep["output"].(map[string]any)
	if out["sha256"] != after["resnet8.pt"] || out["state_dict_sha256"] != after["resnet8.state_dict.pt"] {
		t.Errorf("the report vouches for other files than those in place")
	}
	switch {
	case wantNew && changed != len(publishedFiles):
		t.Errorf("%d of %d files are new, want all", changed, len(publishedFiles))
	case !wantNew && changed != 0:
		t.Errorf("%d of %d files are new, want none", changed, len(publishedFiles))
	}
}

func TestAnInterruptDuringPublishingLetsItFinish(t *testing.T) {
	t.Parallel()
	dir, before := converted(t)
	tmp := t.TempDir()
	cmd, log := slowPublish(t, dir, tmp)
	cmd.Process.Signal(os.Interrupt)
	code := exitStatus(t, cmd.Wait())
	if code != 130 || !strings.Contains(lastLine(log.String()), "interrupted after 1 of 1 models were converted") {
		t.Fatalf("exit %d, last line %q\n%s", code, lastLine(log.String()), log)
	}
	checkWhole(t, dir, before, true)
	assertOnly(t, tmp)
}

func TestAWorkerKilledDuringPublishingIsRolledBack(t *testing.T) {
	t.Parallel()
	dir, before := converted(t)
	tmp := t.TempDir()
	cmd, log := slowPublish(t, dir, tmp)
	for _, pid := range childPIDs(t, cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	code := exitStatus(t, cmd.Wait())
	if code != 1 || !strings.Contains(log.String(), "during publish") {
		t.Fatalf("exit %d\n%s", code, log)
	}
	checkWhole(t, dir, before, false, "resnet8.failed.report.json")
	assertOnly(t, tmp)
}

func TestASupervisorKilledDuringPublishingLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	dir, before := converted(t)
	tmp := t.TempDir()
	cmd, log := slowPublish(t, dir, tmp)
	workers := childPIDs(t, cmd.Process.Pid)
	cmd.Process.Kill()
	cmd.Wait()
	// The orphaned worker finishes publishing, removes its TMPDIR and exits.
	deadline := time.Now().Add(20 * time.Second)
	for alive(workers) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(workers) {
		t.Fatalf("worker %v still running 20s after its supervisor was killed\n%s", workers, log)
	}
	checkWhole(t, dir, before, true)
	assertOnly(t, tmp)
}

func TestKilledWorkersLeaveNoTemporaryFolder(t *testing.T) {
	t.Parallel()
	dir, tmp := t.TempDir(), t.TempDir()
	python(t, dir, customOpModel, "Hang", "hang.onnx")
	writeConfig(t, filepath.Join(dir, "batch.yaml"), "hang.onnx")
	cmd := hooked(t, dir, tmp, "convert", "-c", "batch.yaml", "-v")
	log := &lockedBuffer{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the worker to be in the model (hanging in a native call).
	deadline := time.Now().Add(3 * time.Minute)
	for !strings.Contains(log.String(), "Loading ONNX model from hang.onnx") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	workers := childPIDs(t, cmd.Process.Pid)
	if len(workers) == 0 {
		t.Fatalf("no worker found\n%s", log.String())
	}
	// Supervisor and worker killed at once: neither can clean up.
	cmd.Process.Kill()
	for _, pid := range workers {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	cmd.Wait()
	left, _ := filepath.Glob(filepath.Join(tmp, "onnx2pt-worker-*"))
	if len(left) == 0 {
		t.Fatal("the killed worker's TMPDIR is gone before the next start: the test shows nothing")
	}
	// Once the dead processes' files are closed, the next start removes
	// it, whatever it converts.
	for _, l := range left {
		waitUnlocked(t, filepath.Join(l, ".lock"))
	}
	r := runCmd(t, hooked(t, dir, tmp, "convert", "-c", "batch.yaml", "--timeout", "1s", "-v"))
	if r.code != 1 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, l := range left {
		if _, err := os.Stat(l); err == nil {
			t.Errorf("%s survived the next start\n%s", l, r.stderr)
		}
	}
	assertOnly(t, tmp)
}

// waitUnlocked waits until no process holds the lock on path.
func waitUnlocked(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still locked 20s after its processes were killed", path)
		}
	}
}

// lockedBuffer is a command's output that a test reads while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// childPIDs lists the processes whose parent is pid.
func childPIDs(t *testing.T, pid int) []int {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var kids []int
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces.
		fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			kids = append(kids, child)
		}
	}
	return kids
}

func alive(pids []int) bool {
	for _, pid := range pids {
		if data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			if fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:])); len(fields) > 0 && fields[0] != "Z" {
				return true
			}
		}
	}
	return false
}
