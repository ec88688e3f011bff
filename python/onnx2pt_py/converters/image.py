"""ImageDecoder: JPEG, PNG and WebP bytes to an (H, W, C) uint8 image, with
torchvision's decoders on the CPU.

Each image is decoded to RGB; BGR reverses the channels and Grayscale
takes ITU-R 601-2 luma in Pillow's integer arithmetic, which is what the
ONNX reference (Pillow) gives: tested equal to it pixel for pixel,
JPEG's included. The other formats the specification lists (BMP, TIFF,
PNM, JPEG 2000) torchvision cannot decode, nor can it give 8 bits of a
16-bit PNG as the specification leaves undefined: those raise
NotImplementedError when the model runs. A stream of no listed format, or
one that fails to decode, gives an empty image as the specification says.
onnxruntime has no kernel for this op.
"""

import torch

from ._common import Module, register, result

PIXEL_FORMATS = ("RGB", "BGR", "Grayscale")

# Leading bytes of the listed formats torchvision has no decoder for.
UNDECODABLE = (
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
)
PNM = tuple(b"P" + str(i).encode() for i in range(1, 8))


def _format(head):
    """'JPEG', 'PNG', 'WebP', the name of a listed format torchvision cannot
    decode, or None for bytes of no listed format."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    for signature, name in UNDECODABLE:
        if head.startswith(signature):
            return name
    if head[:2] in PNM and head[2:3].isspace():
        return "PNM"
    return None


def _check_decoder():
    """NotImplementedError unless torchvision can decode images here (it
    may be built without its image library)."""
    try:
        from torchvision.io import ImageReadMode, decode_image, encode_png

        decode_image(encode_png(torch.zeros((3, 1, 1), dtype=torch.uint8)), mode=ImageReadMode.RGB)
    except Exception as e:
        raise NotImplementedError(f"ImageDecoder: torchvision cannot decode images here ({e})") from e


class OnnxImageDecoder(Module):
    def __init__(self, pixel_format):
        super().__init__()
        self.pixel_format = pixel_format

    def forward(self, encoded):
        # (imported here: loading torchvision's image library is only worth it for this op)
        from torchvision import io as image_io

        data = encoded.detach().to("cpu").reshape(-1).contiguous()
        channels = 1 if self.pixel_format == "Grayscale" else 3
        empty = torch.zeros((0, 0, channels), dtype=torch.uint8, device=encoded.device)
        kind = _format(bytes(data[:12].tolist()))
        if kind is None:
            return empty
        if kind not in ("JPEG", "PNG", "WebP") or (kind == "WebP" and not hasattr(image_io, "decode_webp")):
            raise NotImplementedError(f"ImageDecoder: torchvision cannot decode {kind} images")
        try:
            image = image_io.decode_image(data, mode=image_io.ImageReadMode.RGB)
        except RuntimeError:
            _check_decoder()  # a decoder that cannot run at all is no reason for an empty image
            return empty
        if image.dtype != torch.uint8:
            raise NotImplementedError(f"ImageDecoder: {kind} of {image.dtype} samples, whose 8-bit form is not defined")
        image = image.permute(1, 2, 0)
        if self.pixel_format == "BGR":
            image = image.flip(-1)
        elif self.pixel_format == "Grayscale":
            rgb = image.to(torch.int32)
            luma = rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000
            image = (luma >> 16).to(torch.uint8).unsqueeze(-1)
        return image.contiguous().to(encoded.device)


@register("ImageDecoder", [20])
def convert_image_decoder(node, graph):
    pixel_format = node.attributes.get("pixel_format", "RGB")
    pixel_format = pixel_format.decode() if isinstance(pixel_format, bytes) else pixel_format
    if pixel_format not in PIXEL_FORMATS:
        raise ValueError(f"ImageDecoder pixel_format {pixel_format!r} is not one of {', '.join(PIXEL_FORMATS)}")
    _check_decoder()
    return result(OnnxImageDecoder(pixel_format), node)
