package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// RunConfig says how a batch runs: how many workers, which part of the
// model list, what to write about it and when to give up on a model.
type RunConfig struct {
	// Jobs is how many worker processes convert at once; 0 chooses from
	// the cores and the free memory.
	Jobs int `mapstructure:"jobs"`
	// Shard is "I/N": convert only part I (from 0) of N of the models,
	// for N machines sharing one model list.
	Shard string `mapstructure:"shard"`
	// Summary and JUnit are files to write every model's outcome to, as
	// JSON and as JUnit XML.
	Summary string `mapstructure:"summary"`
	JUnit   string `mapstructure:"junit"`
	// Timeout bounds one model's conversion; its worker is killed then.
	Timeout time.Duration `mapstructure:"timeout"`
	// MaxModelsPerWorker replaces a worker after that many models (0:
	// never); MaxWorkerMemory replaces one whose resident memory is above
	// it after a model ("4GiB"; empty: no limit).
	MaxModelsPerWorker int    `mapstructure:"max_models_per_worker"`
	MaxWorkerMemory    string `mapstructure:"max_worker_memory"`
}

func runDefaults(set func(key string, value any)) {
	set("run.jobs", 0)
	set("run.shard", "")
	set("run.summary", "")
	set("run.junit", "")
	set("run.timeout", 30*time.Minute)
	set("run.max_models_per_worker", 200)
	set("run.max_worker_memory", "")
}

// ParseShard reads "I/N" (0 <= I < N); "" is no sharding (nil).
func ParseShard(s string) (*Shard, error) {
	if s == "" {
		return nil, nil
	}
	i, n, ok := strings.Cut(s, "/")
	index, err1 := strconv.Atoi(strings.TrimSpace(i))
	count, err2 := strconv.Atoi(strings.TrimSpace(n))
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%q is not I/N, e.g. 0/4 for the first of four shards", s)
	}
	if count < 1 || index < 0 || index >= count {
		return nil, fmt.Errorf("%q: the shard index must be from 0 to N-1 and N at least 1", s)
	}
	return &Shard{Index: index, Count: count}, nil
}

// Shard is part Index (from 0) of Count of a model list.
type Shard struct{ Index, Count int }

// Select returns the shard's models: every Count-th model from the
// Index-th, in the list's order. Shards 0..Count-1 of one list are disjoint
// and together hold every model, and which shard a model falls in depends
// only on its position, so every machine must be given the same list.
func (s *Shard) Select(models []Model) []Model {
	if s == nil {
		return models
	}
	var out []Model
	for i := s.Index; i < len(models); i += s.Count {
		out = append(out, models[i])
	}
	return out
}

// MaxWorkerBytes is MaxWorkerMemory in bytes; 0 means no limit.
func (r RunConfig) MaxWorkerBytes() (int64, error) {
	if r.MaxWorkerMemory == "" || r.MaxWorkerMemory == "0" {
		return 0, nil
	}
	n, err := humanize.ParseBytes(r.MaxWorkerMemory)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size such as 4GiB or 3000MB", r.MaxWorkerMemory)
	}
	return int64(n), nil
}

func (r RunConfig) validate(add func(string, ...any)) {
	if r.Jobs < 0 {
		add("run.jobs: %d is negative (0 chooses from the cores and memory)", r.Jobs)
	}
	if _, err := ParseShard(r.Shard); err != nil {
		add("run.shard: %v", err)
	}
	if r.Timeout < 0 {
		add("run.timeout: %s is negative", r.Timeout)
	}
	if r.MaxModelsPerWorker < 0 {
		add("run.max_models_per_worker: %d is negative (0: never replace a worker)", r.MaxModelsPerWorker)
	}
	if _, err := r.MaxWorkerBytes(); err != nil {
		add("run.max_worker_memory: %v", err)
	}
}
