package worker

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// memory returns this process's resident memory now and at its peak, in
// bytes: VmRSS and VmHWM on Linux, the peak alone elsewhere.
func memory() (rss, peak int64) {
	if rss, peak = statusMemory("/proc/self/status"); peak > 0 {
		return rss, peak
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		peak = ru.Maxrss * 1024 // KiB on Linux
		if runtime.GOOS == "darwin" {
			peak = ru.Maxrss // bytes on macOS
		}
	}
	return rss, peak
}

// childrenMemory sums the resident memory, now and at peak, of this
// process's live children (the artifact checker): what the worker costs
// beyond itself. Linux only; 0 elsewhere.
func childrenMemory() (rss, peak int64) {
	self := strconv.Itoa(os.Getpid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, stat := range stats {
		data, err := os.ReadFile(stat)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold anything but ')'.
		end := bytes.LastIndexByte(data, ')')
		if end < 0 {
			continue
		}
		if fields := strings.Fields(string(data[end+1:])); len(fields) > 1 && fields[1] == self {
			r, p := statusMemory(filepath.Join(filepath.Dir(stat), "status"))
			rss, peak = rss+r, peak+p
		}
	}
	return rss, peak
}

// statusMemory reads VmRSS and VmHWM from a /proc/PID/status file.
func statusMemory(path string) (rss, peak int64) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			continue
		}
		if key == "VmRSS" {
			rss = kib * 1024
		} else {
			peak = kib * 1024
		}
	}
	return rss, peak
}
