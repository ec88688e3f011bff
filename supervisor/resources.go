package supervisor

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

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
