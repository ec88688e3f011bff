package supervisor

import (
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/onnx2pt/onnx2pt/protocol"
)

// newWorkerTemp makes a worker's TMPDIR and locks it; the lock file goes
// to the worker too, so the lock is held as long as either lives.
func newWorkerTemp() (dir string, lock *os.File, err error) {
	dir, err = os.MkdirTemp("", protocol.TempPrefix)
	if err != nil {
		return "", nil, err
	}
	// Locked under another name first: a sweep opens only TempLock, and
	// must never find it unlocked.
	fresh := filepath.Join(dir, protocol.TempLock+"-new")
	lock, err = os.OpenFile(fresh, os.O_RDWR|os.O_CREATE, 0o600)
	if err == nil {
		err = unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			err = os.Rename(fresh, filepath.Join(dir, protocol.TempLock))
		}
		if err != nil {
			lock.Close()
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return dir, lock, nil
}

// lockless is how old a worker TMPDIR without a lock file must be to be
// taken for a leftover: a new one gets its lock file at once.
const lockless = time.Minute

// SweepWorkerTemps removes the TMPDIRs of workers that are gone, with
// their caches: those a killed supervisor (kill -9) could not remove.
// A TMPDIR whose lock someone holds belongs to a live worker or supervisor
// and is left alone.
func SweepWorkerTemps() (removed int) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), protocol.TempPrefix+"*"))
	for _, dir := range dirs {
		if st, err := os.Lstat(dir); err != nil || !st.IsDir() {
			continue
		}
		lock, err := os.OpenFile(filepath.Join(dir, protocol.TempLock), os.O_RDWR, 0)
		if err != nil {
			if st, err := os.Stat(dir); err == nil && time.Since(st.ModTime()) > lockless {
				os.RemoveAll(dir)
				removed++
			}
			continue
		}
		if unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.RemoveAll(dir)
			removed++
		}
		lock.Close()
	}
	return removed
}
