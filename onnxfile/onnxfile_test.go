package onnxfile

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

func message(fields ...[]byte) []byte { return slices.Concat(fields...) }

func bytesField(num protowire.Number, v []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func varintField(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

// externalTensor is a TensorProto whose data lives in location.
func externalTensor(location string) []byte {
	entry := message(bytesField(entryKey, []byte("location")), bytesField(entryValue, []byte(location)))
	return message(bytesField(8, []byte("w")), bytesField(tensorExternalData, entry), varintField(14, 1))
}

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadFindsExternalDataEverywhere(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "weights.bin", make([]byte, 1000))
	write(t, dir, "body.bin", make([]byte, 24))
	body := bytesField(graphInitializer, externalTensor("body.bin"))
	node := bytesField(nodeAttribute, message(bytesField(1, []byte("then_branch")), bytesField(attributeGraph, body)))
	g := message(
		bytesField(graphInitializer, externalTensor("weights.bin")),
		bytesField(graphInitializer, externalTensor("./weights.bin")), // the same file twice
		bytesField(graphNode, node),
	)
	model := write(t, dir, "m.onnx", message(varintField(modelIRVersion, 8), bytesField(modelGraph, g)))
	info, err := Read(model)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(info.External)
	want := []string{filepath.Join(dir, "body.bin"), filepath.Join(dir, "weights.bin")}
	if !slices.Equal(info.External, want) || info.ExternalBytes != 1024 {
		t.Errorf("external %v (%d bytes), want %v (1024 bytes)", info.External, info.ExternalBytes, want)
	}
}

func TestReadRefusesWhatIsNotAModel(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"empty.onnx":     {},
		"text.onnx":      []byte("not a model\n"),
		"truncated.onnx": append(varintField(modelIRVersion, 8), bytesField(modelGraph, make([]byte, 100))[:20]...),
		"nograph.onnx":   varintField(modelIRVersion, 8),
	} {
		if _, err := Read(write(t, dir, name, data)); !errors.Is(err, ErrNotONNX) {
			t.Errorf("%s: error %v, want ErrNotONNX", name, err)
		}
	}
}

func TestReadTheReferenceModel(t *testing.T) {
	info, err := Read(filepath.Join("..", "models", "resnet8.onnx"))
	if err != nil || len(info.External) != 0 {
		t.Errorf("resnet8.onnx: %+v, %v", info, err)
	}
}
