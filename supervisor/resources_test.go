package supervisor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/onnx2pt/onnx2pt/config"
	"github.com/onnx2pt/onnx2pt/report"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeCgroup points the cgroup files at a folder of the test's making.
func fakeCgroup(t *testing.T, self string, files map[string]string) {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		writeFile(t, filepath.Join(root, name), content)
	}
	writeFile(t, filepath.Join(root, "self"), self)
	oldFS, oldSelf := cgroupFS, selfCgroup
	cgroupFS, selfCgroup = filepath.Join(root, "fs"), filepath.Join(root, "self")
	t.Cleanup(func() { cgroupFS, selfCgroup = oldFS, oldSelf })
}

func TestTheTightestCgroupLimitIsUsed(t *testing.T) {
	const gib = 1 << 30
	fakeCgroup(t, "0::/kubepods/pod1/container\n", map[string]string{
		"fs/memory.max":                             "max\n",
		"fs/kubepods/memory.max":                    "68719476736\n", // 64 GiB
		"fs/kubepods/memory.current":                "1073741824\n",
		"fs/kubepods/pod1/memory.max":               "4294967296\n", // 4 GiB, 1 used
		"fs/kubepods/pod1/memory.current":           "1073741824\n",
		"fs/kubepods/pod1/container/memory.max":     "max\n",
		"fs/kubepods/pod1/container/memory.current": "1073741824\n",
	})
	limit, free := cgroupMemory()
	if limit != 4*gib || free != 3*gib {
		t.Fatalf("limit %d, free %d; want 4 GiB and 3 GiB", limit, free)
	}
	e := EstimateJobs(16, t.TempDir(), nil, false)
	if e.Available() > 3*gib || e.Jobs != 3 {
		t.Errorf("%s: want 3 workers of 1 GiB in the cgroup's 3 GiB", e)
	}
	if !strings.Contains(e.String(), "cgroup limit 4096 MiB (3072 MiB free)") {
		t.Errorf("the log line lacks the limit: %s", e)
	}
}

func TestCgroupV1Limit(t *testing.T) {
	fakeCgroup(t, "12:cpu,cpuacct:/x\n11:memory:/docker/abc\n", map[string]string{
		"fs/memory/memory.limit_in_bytes":            "9223372036854771712\n", // none
		"fs/memory/docker/abc/memory.limit_in_bytes": "2147483648\n",
		"fs/memory/docker/abc/memory.usage_in_bytes": "536870912\n",
	})
	if limit, free := cgroupMemory(); limit != 2<<30 || free != 1536<<20 {
		t.Errorf("limit %d, free %d", limit, free)
	}
}

func TestTheEstimateCountsExternalDataAndTheChecker(t *testing.T) {
	fakeCgroup(t, "0::/\n", nil)
	dir := t.TempDir()
	// A model whose one initializer lives in a 64 MiB weights.bin.
	model := filepath.Join(dir, "m.onnx")
	writeFile(t, model, string(externalDataModel("weights.bin")))
	if err := os.WriteFile(filepath.Join(dir, "weights.bin"), make([]byte, 64<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	venv := t.TempDir()
	RememberPeaks(venv, []report.Outcome{{PeakRSSBytes: 2 << 30, CheckerPeakRSSBytes: 800 << 20}})
	tasks := []Task{{Model: config.Model{Input: model}}}
	e := EstimateJobs(4, venv, tasks, true)
	if e.ModelBytes < 64<<20 || e.WorkerPeak != 2<<30 || e.CheckerPeak != 800<<20 {
		t.Errorf("%s: want the external data and both recalled peaks counted", e)
	}
	if e.PerWorker() != e.WorkerPeak+e.CheckerPeak+3*e.ModelBytes {
		t.Errorf("per worker %d", e.PerWorker())
	}
	if without := EstimateJobs(4, venv, tasks, false); without.CheckerPeak != 0 {
		t.Errorf("no portable artifact, yet a checker counted: %s", without)
	}
	for _, part := range []string{"worker peak 2048 MiB", "checker peak 800 MiB", "3 × 64 MiB of model and external data"} {
		if !strings.Contains(e.String(), part) {
			t.Errorf("the log line lacks %q: %s", part, e)
		}
	}
}

// externalDataModel is the bytes of an ONNX model whose one initializer
// names location as its external data.
func externalDataModel(location string) []byte {
	bytesField := func(num protowire.Number, v []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
	}
	entry := append(bytesField(1, []byte("location")), bytesField(2, []byte(location))...)
	tensor := append(bytesField(8, []byte("w")), bytesField(13, entry)...)
	graph := bytesField(5, tensor)
	model := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 8)
	return append(model, bytesField(7, graph)...)
}
