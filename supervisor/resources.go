package supervisor

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/onnx2pt/onnx2pt/onnxfile"
	"github.com/onnx2pt/onnx2pt/report"
)

// Estimate is how many workers to run by default, with what it was made
// of, for the log.
type Estimate struct {
	Cores int
	// Per worker: its own peak, the artifact checker's beside it (0 when
	// no portable artifact is asked for), and the largest model's files,
	// external data included, which its tensors take about three times.
	WorkerPeak, CheckerPeak, ModelBytes int64
	// MemAvailable is /proc/meminfo's; CgroupFree what the tightest cgroup
	// memory limit leaves (limit minus usage), 0 when none applies.
	MemAvailable, CgroupFree, CgroupLimit int64
	Jobs                                  int
}

// Fallbacks before any batch has run in a virtualenv: a worker with torch,
// onnx2torch and onnxruntime imported, converting a small model, and the
// checker with torch imported, as measured.
const (
	defaultWorkerPeak  = 1 << 30
	defaultCheckerPeak = 900 << 20
)

// PerWorker is the memory one worker is expected to need.
func (e Estimate) PerWorker() int64 { return e.WorkerPeak + e.CheckerPeak + 3*e.ModelBytes }

// Available is the memory new workers can use: the smaller of the
// machine's and the cgroup's.
func (e Estimate) Available() int64 {
	switch {
	case e.CgroupFree > 0 && (e.MemAvailable == 0 || e.CgroupFree < e.MemAvailable):
		return e.CgroupFree
	}
	return e.MemAvailable
}

func (e Estimate) String() string {
	limit := "none"
	if e.CgroupLimit > 0 {
		limit = fmt.Sprintf("%d MiB (%d MiB free)", e.CgroupLimit>>20, e.CgroupFree>>20)
	}
	return fmt.Sprintf("--jobs %d: %d cores; %d MiB per worker (worker peak %d MiB + checker peak %d MiB + 3 × %d MiB of model and external data); %d MiB available (MemAvailable %d MiB, cgroup limit %s)",
		e.Jobs, e.Cores, e.PerWorker()>>20, e.WorkerPeak>>20, e.CheckerPeak>>20, e.ModelBytes>>20,
		e.Available()>>20, e.MemAvailable>>20, limit)
}

// EstimateJobs sizes the default --jobs for tasks in the virtualenv venvDir
// (whose last batch's peaks it recalls) on a machine with cores cores.
func EstimateJobs(cores int, venvDir string, tasks []Task, portable bool) Estimate {
	e := Estimate{Cores: cores, MemAvailable: MemAvailable()}
	e.WorkerPeak, e.CheckerPeak = RecallPeaks(venvDir)
	if e.WorkerPeak == 0 {
		e.WorkerPeak = defaultWorkerPeak
	}
	switch {
	case !portable:
		e.CheckerPeak = 0
	case e.CheckerPeak == 0:
		e.CheckerPeak = defaultCheckerPeak
	}
	for _, t := range tasks {
		e.ModelBytes = max(e.ModelBytes, ModelBytes(t.Model.Input))
	}
	e.CgroupLimit, e.CgroupFree = cgroupMemory()
	e.Jobs = DefaultJobs(cores, e.Available(), e.PerWorker())
	return e
}

// ModelBytes is the size of a model's file and of the external data files
// it names.
func ModelBytes(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	size := st.Size()
	if info, err := onnxfile.Read(path); err == nil {
		size += info.ExternalBytes
	}
	return size
}

// DefaultJobs is how many workers to run: one per core, no more than fit
// in avail bytes of memory at perWorker each (avail 0: unknown), and at
// least one.
func DefaultJobs(cores int, avail, perWorker int64) int {
	jobs := cores
	if avail > 0 && perWorker > 0 {
		jobs = min(jobs, int(avail/perWorker))
	}
	return max(jobs, 1)
}

// MemAvailable is the memory the kernel says is available for new work
// without swapping (MemAvailable in /proc/meminfo), or 0 where unknown.
func MemAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kib * 1024
		}
	}
	return 0
}

// Where the cgroup files are; tests point these elsewhere.
var (
	cgroupFS   = "/sys/fs/cgroup"
	selfCgroup = "/proc/self/cgroup"
)

// cgroupMemory is the tightest memory limit of this process's cgroup and
// its ancestors (a container's, a Kubernetes pod's, a systemd slice's),
// and what it leaves free; 0, 0 when none is set. /proc/meminfo knows
// nothing of these: a worker over the limit is killed while the machine
// has memory to spare.
func cgroupMemory() (limit, free int64) {
	data, err := os.ReadFile(selfCgroup)
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var limitFile, usageFile, root string
		switch {
		case parts[0] == "0" && parts[1] == "": // cgroup v2
			limitFile, usageFile, root = "memory.max", "memory.current", cgroupFS
		case strings.Contains(","+parts[1]+",", ",memory,"): // v1
			limitFile, usageFile, root = "memory.limit_in_bytes", "memory.usage_in_bytes", filepath.Join(cgroupFS, "memory")
		default:
			continue
		}
		for dir := filepath.Join(root, parts[2]); ; dir = filepath.Dir(dir) {
			l, u := readBytes(filepath.Join(dir, limitFile)), readBytes(filepath.Join(dir, usageFile))
			// v1 writes "no limit" as a number near 2^63.
			if l > 0 && l < 1<<60 && (limit == 0 || l-u < free) {
				limit, free = l, max(l-u, 0)
			}
			if dir == root || !strings.HasPrefix(dir, root) {
				break
			}
		}
	}
	return limit, free
}

// readBytes reads a cgroup file holding a number of bytes; 0 for "max", a
// missing file or anything else.
func readBytes(path string) int64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// peaksFile keeps, in the virtualenv, the largest peak memory a worker and
// an artifact checker reached in the last batch.
func peaksFile(venvDir string) string { return filepath.Join(venvDir, "onnx2pt", "worker-peak-rss") }

// RecallPeaks returns the peaks RememberPeaks kept (0 where unknown).
func RecallPeaks(venvDir string) (worker, checker int64) {
	data, err := os.ReadFile(peaksFile(venvDir))
	if err != nil {
		return 0, 0
	}
	fields := strings.Fields(string(data))
	if len(fields) > 0 {
		worker, _ = strconv.ParseInt(fields[0], 10, 64)
	}
	if len(fields) > 1 {
		checker, _ = strconv.ParseInt(fields[1], 10, 64)
	}
	return worker, checker
}

// RememberPeaks keeps the batch's largest peaks for the next estimate; a
// peak the batch did not measure keeps its earlier value.
func RememberPeaks(venvDir string, outcomes []report.Outcome) {
	worker, checker := RecallPeaks(venvDir)
	var w, c int64
	for _, o := range outcomes {
		w, c = max(w, o.PeakRSSBytes), max(c, o.CheckerPeakRSSBytes)
	}
	if w == 0 && c == 0 {
		return
	}
	if w > 0 {
		worker = w
	}
	if c > 0 {
		checker = c
	}
	os.MkdirAll(filepath.Dir(peaksFile(venvDir)), 0o755)
	report.WriteFileAtomic(peaksFile(venvDir), fmt.Appendf(nil, "%d %d\n", worker, checker))
}
