package config

import (
	"fmt"
	"testing"
)

func TestShardsCoverEveryModelOnce(t *testing.T) {
	for n := range 14 {
		models := make([]Model, n)
		for i := range models {
			models[i].Input = fmt.Sprintf("m%d.onnx", i)
		}
		for count := 1; count <= 6; count++ {
			seen := map[string]int{}
			for index := range count {
				shard, err := ParseShard(fmt.Sprintf("%d/%d", index, count))
				if err != nil {
					t.Fatal(err)
				}
				part := shard.Select(models)
				if len(part) < n/count || len(part) > n/count+1 {
					t.Errorf("%d models, shard %d/%d has %d: unbalanced", n, index, count, len(part))
				}
				last := -1
				for _, m := range part {
					seen[m.Input]++
					var i int
					fmt.Sscanf(m.Input, "m%d.onnx", &i)
					if i <= last {
						t.Errorf("shard %d/%d out of order: %v", index, count, part)
					}
					last = i
				}
			}
			for _, m := range models {
				if seen[m.Input] != 1 {
					t.Errorf("%d models in %d shards: %s is in %d shards", n, count, m.Input, seen[m.Input])
				}
			}
		}
	}
}

func TestParseShard(t *testing.T) {
	if s, err := ParseShard(""); s != nil || err != nil {
		t.Errorf(`"" = %v, %v; want no sharding`, s, err)
	}
	if s, err := ParseShard(" 2 / 3"); err != nil || *s != (Shard{2, 3}) {
		t.Errorf("2/3 = %v, %v", s, err)
	}
	for _, bad := range []string{"3/3", "-1/2", "0/0", "1", "a/b", "1/2/3"} {
		if _, err := ParseShard(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestRunValidation(t *testing.T) {
	for _, c := range []struct {
		run  RunConfig
		want string
	}{
		{RunConfig{Jobs: -1}, "run.jobs: -1 is negative (0 chooses from the cores and memory)"},
		{RunConfig{Shard: "4/4"}, `run.shard: "4/4": the shard index must be from 0 to N-1 and N at least 1`},
		{RunConfig{Timeout: -1}, "run.timeout: -1ns is negative"},
		{RunConfig{MaxModelsPerWorker: -2}, "run.max_models_per_worker: -2 is negative (0: never replace a worker)"},
		{RunConfig{MaxWorkerMemory: "lots"}, `run.max_worker_memory: "lots" is not a size such as 4GiB or 3000MB`},
		{RunConfig{MaxWorkerMemory: "4GiB", Shard: "0/2", Jobs: 3}, ""},
	} {
		var got []string
		c.run.validate(func(f string, a ...any) { got = append(got, fmt.Sprintf(f, a...)) })
		if (c.want == "" && len(got) > 0) || (c.want != "" && (len(got) != 1 || got[0] != c.want)) {
			t.Errorf("%+v: problems %q, want %q", c.run, got, c.want)
		}
	}
	if n, _ := (RunConfig{MaxWorkerMemory: "4GiB"}).MaxWorkerBytes(); n != 4<<30 {
		t.Errorf("4GiB = %d bytes", n)
	}
}
