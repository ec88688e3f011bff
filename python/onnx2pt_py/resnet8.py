"""Deterministic generator for models/resnet8.onnx.

The topology is MLPerf Tiny's ResNet8 for CIFAR-10 as a Keras model exports
it: an NHWC float32 input [batch, 32, 32, 3], a Transpose to NCHW, a 16-filter
3x3 conv + BatchNorm + ReLU stem, three residual stacks of 16, 32 and 64
filters (stride 2 and a 1x1 projection shortcut in the second and third),
8x8 average pooling, flatten, a dense layer (MatMul + Add) to 10 classes and
softmax. Convolutions pad like TensorFlow's "same" (asymmetric at stride 2).

Weights come from a small splitmix64 generator using only integer and
correctly-rounded float arithmetic, so the file is byte-identical on every
platform and numpy version.

    python -m onnx2pt_py.resnet8 --output models/resnet8.onnx
"""

import argparse
import math
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13  # onnx2torch converts every op used here at this opset
IR_VERSION = 8
INPUT_NAME = "input_1"
OUTPUT_NAME = "dense"
BATCH = "batch"


class SplitMix64:
    """splitmix64: tiny, fast and identical everywhere."""

    MASK = (1 << 64) - 1

    def __init__(self, seed):
        self.state = seed & self.MASK

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & self.MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        return z ^ (z >> 31)

    def uniform(self, low, high, shape):
        n = int(np.prod(shape)) if shape else 1
        values = [low + (high - low) * ((self.next() >> 11) * 2.0**-53) for _ in range(n)]
        return np.array(values, dtype=np.float32).reshape(shape)


class Builder:
    def __init__(self, seed):
        self.rng = SplitMix64(seed)
        self.nodes = []
        self.initializers = []
        self.count = {}

    def name(self, kind):
        self.count[kind] = self.count.get(kind, 0) + 1
        return f"{kind}_{self.count[kind]}"

    def const(self, name, array):
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, name=None, **attrs):
        name = name or self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv(self, x, c_in, c_out, kernel, stride):
        # He-uniform weights, as Keras' he_uniform initialiser draws them.
        limit = math.sqrt(6.0 / (c_in * kernel * kernel))
        w = self.rng.uniform(-limit, limit, (c_out, c_in, kernel, kernel))
        b = self.rng.uniform(-0.05, 0.05, (c_out,))
        name = self.name("conv")
        return self.node(
            "Conv",
            [x, self.const(name + "/W", w), self.const(name + "/B", b)],
            name=name,
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=same_pads(kernel, stride),
        )

    def batchnorm(self, x, channels):
        name = self.name("bn")
        gamma = self.rng.uniform(0.8, 1.2, (channels,))
        beta = self.rng.uniform(-0.1, 0.1, (channels,))
        mean = self.rng.uniform(-0.2, 0.2, (channels,))
        var = self.rng.uniform(0.5, 1.5, (channels,))
        inputs = [x] + [
            self.const(f"{name}/{k}", v) for k, v in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var))
        ]
        return self.node("BatchNormalization", inputs, name=name, epsilon=1e-3)

    def stack(self, x, c_in, c_out, stride):
        y = self.node("Relu", [self.batchnorm(self.conv(x, c_in, c_out, 3, stride), c_out)])
        y = self.batchnorm(self.conv(y, c_out, c_out, 3, 1), c_out)
        shortcut = x if stride == 1 and c_in == c_out else self.conv(x, c_in, c_out, 1, stride)
        return self.node("Relu", [self.node("Add", [y, shortcut])])


def same_pads(kernel, stride, size=32):
    """TensorFlow 'same' padding: the extra pixel goes after, not before.

    The layers here see even input sizes only, so one size stands for all.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    before = total // 2
    return [before, before, total - before, total - before]


def build(seed=0):
    """Return the ResNet8 ModelProto for the given seed."""
    b = Builder(seed)
    x = b.node("Transpose", [INPUT_NAME], perm=[0, 3, 1, 2])
    x = b.node("Relu", [b.batchnorm(b.conv(x, 3, 16, 3, 1), 16)])
    x = b.stack(x, 16, 16, 1)
    x = b.stack(x, 16, 32, 2)
    x = b.stack(x, 32, 64, 2)
    x = b.node("AveragePool", [x], kernel_shape=[8, 8], strides=[8, 8])
    x = b.node("Transpose", [x], perm=[0, 2, 3, 1])  # back to NHWC before Keras' Flatten
    x = b.node("Reshape", [x, b.const("flatten/shape", np.array([-1, 64], dtype=np.int64))])
    limit = math.sqrt(6.0 / (64 + 10))  # glorot_uniform, Keras' Dense default
    w = b.const("dense/kernel", b.rng.uniform(-limit, limit, (64, 10)))
    bias = b.const("dense/bias", b.rng.uniform(-0.05, 0.05, (10,)))
    x = b.node("Add", [b.node("MatMul", [x, w]), bias])
    b.nodes.append(helper.make_node("Softmax", [x], [OUTPUT_NAME], name="softmax", axis=-1))

    graph = helper.make_graph(
        b.nodes,
        "resnet8",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [BATCH, 32, 32, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [BATCH, 10])],
        initializer=b.initializers,
    )
    model = helper.make_model(
        graph,
        producer_name="onnx2pt.resnet8",
        producer_version="1",
        opset_imports=[helper.make_opsetid("", OPSET)],
        doc_string=f"MLPerf Tiny ResNet8 (CIFAR-10) topology with synthetic weights, seed {seed}",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="models/resnet8.onnx")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    data = build(args.seed).SerializeToString()
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.output)
    print(f"wrote {args.output} ({len(data)} bytes, opset {OPSET})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
