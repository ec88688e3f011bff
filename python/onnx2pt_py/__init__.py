"""Python side of onnx2pt: the steps the Go host drives inside its embedded
interpreter (load, convert, probe, save, verify) and the ResNet8 generator."""
