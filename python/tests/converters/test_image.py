"""ImageDecoder, against the ONNX reference evaluator (Pillow; onnxruntime
has no kernel for it), pixel for pixel."""

import io

import numpy as np
import onnx2torch
import pytest
import torch
from convert_check import assert_same, make_model, run_reference, run_torch
from onnx import helper

import onnx2pt_py.converters.image  # noqa: F401  (also imported by the package; this test needs it first)

PIL = pytest.importorskip("PIL.Image")
# (torchvision 0.29 deprecates its image decoders, in favour of torchcodec)
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding:DeprecationWarning")


def picture(h, w, seed=0):
    """A smooth image with noise: what photographs look like to a codec."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0, 255, (1, 3, h // 4 + 2, w // 4 + 2)).astype(np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic")[0].permute(1, 2, 0).numpy()
    return np.clip(smooth + rng.normal(0, 8, smooth.shape), 0, 255).astype(np.uint8)


def encode(image, fmt, mode="RGB", **options):
    pil = PIL.fromarray(image)
    pil = pil.quantize(16) if mode == "P" else pil.convert(mode)
    buffer = io.BytesIO()
    pil.save(buffer, format=fmt, **options)
    return np.frombuffer(buffer.getvalue(), np.uint8).copy()


def decoder_model(data, pixel_format=None):
    attrs = {} if pixel_format is None else {"pixel_format": pixel_format}
    node = helper.make_node("ImageDecoder", ["x"], ["y"], **attrs)
    return make_model(node, {"x": data}, ["y"], 20, shapes={"x": ["n"]})


def decode(data, pixel_format=None):
    return run_torch(decoder_model(data, pixel_format), {"x": data})[0]


ENCODINGS = [
    ("JPEG", {"quality": 90}),
    ("JPEG", {"quality": 30, "subsampling": 0}),
    ("JPEG", {"quality": 75, "subsampling": 1}),
    ("JPEG", {"progressive": True}),
    ("PNG", {}),
    ("WEBP", {"quality": 80}),
    ("WEBP", {"lossless": True}),
]


@pytest.mark.parametrize("fmt, options", ENCODINGS)
@pytest.mark.parametrize("pixel_format", [None, "RGB", "BGR", "Grayscale"])
@pytest.mark.parametrize("h, w", [(32, 32), (17, 29), (1, 1), (3, 70)])
def test_decodes_as_the_reference(fmt, options, pixel_format, h, w):
    data = encode(picture(h, w), fmt, **options)
    model = decoder_model(data, pixel_format)
    assert_same(run_reference(model, {"x": data}), run_torch(model, {"x": data}))


@pytest.mark.parametrize("fmt, mode", [("PNG", "RGBA"), ("PNG", "L"), ("PNG", "LA"), ("PNG", "P"), ("JPEG", "L")])
@pytest.mark.parametrize("pixel_format", ["RGB", "Grayscale"])
def test_other_colour_modes(fmt, mode, pixel_format):
    # The reference returns such images in their own mode; the specification
    # asks for RGB or Grayscale, which Pillow's conversion gives.
    data = encode(picture(20, 24, seed=1), fmt, mode)
    opened = PIL.open(io.BytesIO(data.tobytes()))
    expected = np.array(opened.convert("RGB")) if pixel_format == "RGB" else np.array(opened.convert("L"))[..., None]
    assert_same([expected], [decode(data, pixel_format)])


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "PPM"])
def test_refuses_formats_torchvision_cannot_decode(fmt):
    data = encode(picture(8, 8), fmt)
    name = {"PPM": "PNM"}.get(fmt, fmt)
    with pytest.raises(NotImplementedError, match=f"cannot decode {name}"):
        decode(data)


def test_refuses_16_bit_png():
    # (the reference keeps the high byte of 16-bit RGB, clips 16-bit grey)
    buffer = io.BytesIO()
    PIL.fromarray(picture(8, 8)[..., 0].astype(np.uint16) * 257).save(buffer, format="PNG")
    with pytest.raises(NotImplementedError, match="8-bit form"):
        decode(np.frombuffer(buffer.getvalue(), np.uint8).copy())


@pytest.mark.parametrize("pixel_format, channels", [("RGB", 3), ("Grayscale", 1)])
def test_undecodable_streams_give_an_empty_image(pixel_format, channels):
    jpeg = encode(picture(16, 16), "JPEG")
    for data in (np.arange(40, dtype=np.uint8), jpeg[:30], np.zeros(1, np.uint8)):
        y = decode(data, pixel_format)
        assert y.shape == (0, 0, channels) and y.dtype == np.uint8


def test_saved_and_reloaded():
    data = encode(picture(12, 10), "PNG")
    model = decoder_model(data, "BGR")
    buffer = io.BytesIO()
    torch.save(onnx2torch.convert(model), buffer)
    buffer.seek(0)
    module = torch.load(buffer, weights_only=False).eval()
    assert_same(run_reference(model, {"x": data}), [module(torch.from_numpy(data)).numpy()])


def test_refuses_an_unknown_pixel_format():
    data = encode(picture(4, 4), "PNG")
    model = decoder_model(data, "RGB")
    model.graph.node[0].attribute[0].s = b"CMYK"
    with pytest.raises(ValueError, match="CMYK"):
        onnx2torch.convert(model)
