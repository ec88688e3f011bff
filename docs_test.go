package onnx2pt

import (
	"bytes"
	"errors"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"gopkg.in/yaml.v3"
)

var yamlBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// The examples in docs/scale.md are meant to be copied: each YAML block
// parses, and the GitHub Actions workflow passes actionlint.
func TestScaleExamplesAreValid(t *testing.T) {
	doc, err := os.ReadFile("docs/scale.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := yamlBlock.FindAllSubmatch(doc, -1)
	workflows := 0
	for i, b := range blocks {
		dec := yaml.NewDecoder(bytes.NewReader(b[1]))
		for {
			var v any
			if err := dec.Decode(&v); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Errorf("YAML block %d does not parse: %v\n%s", i+1, err, b[1])
				break
			}
		}
		if !strings.Contains(string(b[1]), "runs-on:") {
			continue
		}
		workflows++
		linter, err := actionlint.NewLinter(io.Discard, &actionlint.LinterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		problems, err := linter.Lint(".github/workflows/convert.yml", b[1], nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("actionlint, block %d: %s", i+1, p.Error())
		}
	}
	if len(blocks) < 2 || workflows != 1 {
		t.Errorf("%d YAML blocks, %d workflows: the examples moved?", len(blocks), workflows)
	}
}
