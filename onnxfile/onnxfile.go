// Package onnxfile reads the little the Go side needs from an ONNX file
// without Python: whether it is one at all, and which external data files
// it names. The file is mapped, not read: the large tensors it skips are
// never paged in.
package onnxfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of onnx.proto that lead to external data.
const (
	modelIRVersion = 1
	modelGraph     = 7

	graphNode              = 1
	graphInitializer       = 5
	graphSparseInitializer = 15

	nodeAttribute = 5

	attributeTensor  = 5
	attributeGraph   = 6
	attributeTensors = 10
	attributeGraphs  = 11

	sparseValues  = 1
	sparseIndices = 2

	tensorExternalData = 13

	entryKey   = 1
	entryValue = 2
)

// maxDepth bounds the nesting of subgraphs followed (a hostile file could
// nest them without end).
const maxDepth = 64

// Info is what Read finds.
type Info struct {
	// External lists the external data files the tensors name, once each,
	// resolved against the model's folder.
	External []string
	// ExternalBytes is their total size (missing ones count 0).
	ExternalBytes int64
}

// ErrNotONNX is wrapped by Read's error for a file that is not an ONNX
// model: empty, not protocol buffers, or without a graph.
var ErrNotONNX = errors.New("not an ONNX model")

// Read checks that path holds an ONNX model and lists its external data.
func Read(path string) (*Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("%w: the file is empty", ErrNotONNX)
	}
	data, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return nil, err
	}
	defer unix.Munmap(data)

	locations := map[string]bool{}
	hasGraph, hasIR := false, false
	err = fields(data, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == modelIRVersion && typ == protowire.VarintType:
			hasIR = true
		case num == modelGraph && typ == protowire.BytesType:
			hasGraph = true
			return graph(v, locations, 0)
		}
		return nil
	})
	if err != nil || !hasGraph || !hasIR {
		why := "no graph"
		if err != nil { // protowire's messages are not for people
			why = "not protocol buffers"
		}
		return nil, fmt.Errorf("%w (%s)", ErrNotONNX, why)
	}
	info := &Info{}
	dir := filepath.Dir(path)
	for loc := range locations {
		file := filepath.Join(dir, loc)
		info.External = append(info.External, file)
		if st, err := os.Stat(file); err == nil {
			info.ExternalBytes += st.Size()
		}
	}
	return info, nil
}

func graph(data []byte, locations map[string]bool, depth int) error {
	if depth > maxDepth {
		return errors.New("subgraphs nested too deep")
	}
	return fields(data, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case graphInitializer:
			return tensor(v, locations)
		case graphSparseInitializer:
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				if typ == protowire.BytesType && (num == sparseValues || num == sparseIndices) {
					return tensor(v, locations)
				}
				return nil
			})
		case graphNode:
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				if num == nodeAttribute && typ == protowire.BytesType {
					return attribute(v, locations, depth)
				}
				return nil
			})
		}
		return nil
	})
}

func attribute(data []byte, locations map[string]bool, depth int) error {
	return fields(data, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case attributeTensor, attributeTensors:
			return tensor(v, locations)
		case attributeGraph, attributeGraphs:
			return graph(v, locations, depth+1)
		}
		return nil
	})
}

func tensor(data []byte, locations map[string]bool) error {
	return fields(data, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if num != tensorExternalData || typ != protowire.BytesType {
			return nil
		}
		var key, value string
		err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
			switch {
			case num == entryKey && typ == protowire.BytesType:
				key = string(v)
			case num == entryValue && typ == protowire.BytesType:
				value = string(v)
			}
			return nil
		})
		if key == "location" && value != "" {
			locations[filepath.Clean(value)] = true
		}
		return err
	})
}

// fields calls f with each field of the message in data; v is the bytes of
// a length-delimited field, nil otherwise.
func fields(data []byte, f func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		data = data[n:]
		var v []byte
		if typ == protowire.BytesType {
			v, n = protowire.ConsumeBytes(data)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		data = data[n:]
		if err := f(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}
