package worker

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// memory returns this process's resident memory now and at its peak, in
// bytes: VmRSS and VmHWM on Linux, the peak alone elsewhere.
func memory() (rss, peak int64) {
	if f, err := os.Open("/proc/self/status"); err == nil {
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
		if peak > 0 {
			return rss, peak
		}
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
