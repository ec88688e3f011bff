package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestOutputPathsFor(t *testing.T) {
	for _, c := range []struct {
		output string
		want   OutputPaths
	}{
		{"models/resnet8.pt", OutputPaths{"models/resnet8.pt", "models/resnet8.state_dict.pt", "models/resnet8.report.json", "models/resnet8.failed.report.json", "models/resnet8.torchscript.pt", "models/resnet8.pt2", "models/resnet8"}},
		{"out/m.pth", OutputPaths{"out/m.pth", "out/m.state_dict.pth", "out/m.report.json", "out/m.failed.report.json", "out/m.torchscript.pth", "out/m.pt2", "out/m"}},
		{"out/model", OutputPaths{"out/model", "out/model.state_dict", "out/model.report.json", "out/model.failed.report.json", "out/model.torchscript", "out/model.pt2", "out/model.source"}},
		{"out/m.pt2", OutputPaths{"out/m.pt2", "out/m.state_dict.pt2", "out/m.report.json", "out/m.failed.report.json", "out/m.torchscript.pt2", "out/m.exported.pt2", "out/m"}},
		{"a.b/c.v1.pt", OutputPaths{"a.b/c.v1.pt", "a.b/c.v1.state_dict.pt", "a.b/c.v1.report.json", "a.b/c.v1.failed.report.json", "a.b/c.v1.torchscript.pt", "a.b/c.v1.pt2", "a.b/c.v1"}},
	} {
		got := Model{Output: c.output}.Paths()
		if got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.output, got, c.want)
		}
		if all := got.All(); !reflect.DeepEqual(all, []string{c.want.Model, c.want.StateDict, c.want.Report, c.want.FailedReport, c.want.TorchScript, c.want.Exported, c.want.Source}) {
			t.Errorf("%s: All() = %q", c.output, all)
		}
	}
}

// TestValidateCollisions checks that every file a model writes is compared
// with every file the other models write or read. In the cases, {d} stands
// for the test's directory.
func TestValidateCollisions(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.onnx", "b.onnx", "m.report.json", "m.state_dict.onnx"} {
		writeFile(t, dir, name, "x")
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	type model struct{ in, out string }
	for _, c := range []struct {
		name      string
		models    []model
		fromFlags bool
		want      []string // one problem each, in order
	}{
		{"different names", []model{{"a.onnx", "x.pt"}, {"a.onnx", "y.pt"}, {"b.onnx", "sub/x.pt"}}, false, nil},
		{"same output", []model{{"a.onnx", "x.pt"}, {"b.onnx", "x.pt"}},
			false, []string{"models[1].output: {d}x.pt is also the output of models[0]"}},
		{"same output spelt differently", []model{{"a.onnx", "x.pt"}, {"b.onnx", "sub/../x.pt"}},
			false, []string{"models[1].output: {d}sub/../x.pt is also the output of models[0]"}},
		{"same output through a linked directory", []model{{"a.onnx", "x.pt"}, {"b.onnx", "link/x.pt"}},
			false, []string{"models[1].output: {d}link/x.pt is also the output of models[0]"}},
		{"same report", []model{{"a.onnx", "x.pt"}, {"b.onnx", "x.pth"}},
			false, []string{"models[1].output: {d}x.pth would write {d}x.report.json, which models[0] ({d}x.pt) also writes; choose another output"}},
		{"output is another's state dict", []model{{"a.onnx", "a.pt"}, {"b.onnx", "a.state_dict.pt"}},
			false, []string{"models[1].output: {d}a.state_dict.pt is also written by models[0] ({d}a.pt); choose another output"}},
		{"state dict is another's output", []model{{"a.onnx", "a.state_dict.pt"}, {"b.onnx", "a.pt"}},
			false, []string{"models[1].output: {d}a.pt would write {d}a.state_dict.pt, which models[0] ({d}a.state_dict.pt) also writes; choose another output"}},
		{"output is another's report", []model{{"a.onnx", "a.pt"}, {"b.onnx", "a.report.json"}},
			false, []string{"models[1].output: {d}a.report.json is also written by models[0] ({d}a.pt); choose another output"}},
		{"failure report is another's report", []model{{"a.onnx", "x.pt"}, {"b.onnx", "x.failed.pt"}},
			false, []string{"models[1].output: {d}x.failed.pt would write {d}x.failed.report.json, which models[0] ({d}x.pt) also writes; choose another output"}},
		{"output is another's input", []model{{"a.onnx", "b.onnx"}, {"b.onnx", "c.pt"}},
			false, []string{"models[0].output: {d}b.onnx would overwrite models[1].input; choose another output"}},
		{"report is another's input", []model{{"a.onnx", "m.pt"}, {"m.report.json", "n.pt"}},
			false, []string{"models[0].output: {d}m.pt would write {d}m.report.json over models[1].input; choose another output"}},
		{"state dict is its own input", []model{{"m.state_dict.onnx", "m.onnx"}},
			false, []string{"models[0].output: {d}m.onnx would write {d}m.state_dict.onnx over models[0].input; choose another output"}},
		{"state dict is its own input, from flags", []model{{"m.state_dict.onnx", "m.onnx"}},
			true, []string{"--output: {d}m.onnx would write {d}m.state_dict.onnx over --input; choose another output"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Load(NewViper(), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range c.models {
				cfg.Models = append(cfg.Models, Model{Input: filepath.Join(dir, m.in), Output: dir + "/" + m.out, FromFlags: c.fromFlags})
			}
			var problems []string
			if err := cfg.Validate(); err != nil {
				ue, ok := err.(*UsageError)
				if !ok {
					t.Fatalf("got %v, want a UsageError", err)
				}
				problems = ue.Problems
			}
			var want []string
			for _, w := range c.want {
				want = append(want, strings.ReplaceAll(w, "{d}", dir+"/"))
			}
			if !reflect.DeepEqual(problems, want) {
				t.Errorf("problems:\n  %s\nwant:\n  %s", strings.Join(problems, "\n  "), strings.Join(want, "\n  "))
			}
		})
	}
}
