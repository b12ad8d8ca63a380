#!/usr/bin/env python3
"""Small JPEG fixtures and PIL's decoding of them, for tests/test_data_jpeg.cpp.

Writes, next to this script:
  *.jpg      a few small JPEGs encoded by PIL (libjpeg-turbo): baseline 4:2:0, 4:4:4, 4:2:2,
             progressive, grayscale, odd sizes (37x23, 4:2:0 and progressive), CMYK (PIL writes
             Adobe-inverted CMYK with an Adobe APP14 marker), and one with an EXIF orientation
             tag of 6 (rotate 90) that decoders must ignore, as PIL's Image.open does.
  refs.npz   PIL's decoding: for every file F, array F = Image.open(F).convert("RGB") as uint8
             [H, W, 3]; F + "_L" = Image.open(F).convert("L") for two of them (uint8 [H, W]).

Run with Debian's interpreter (it has numpy; Pillow from Debian's python3-pil, which uses the
same libjpeg62-turbo as redi):
  python3 tests/data/jpeg/make_jpeg_fixtures.py
The content is deterministic (a fixed numpy seed); the JPEG bytes depend on the encoder's
version, the references are always recomputed from the written files.
"""
import io
import os

import numpy as np
from PIL import Image, features

HERE = os.path.dirname(os.path.abspath(__file__))


def content(h, w, c, seed):
    """Smooth gradients plus a little noise: enough detail for chroma and DCT rounding to matter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for k in range(c):
        base = 128 + 90 * np.sin(x / (3.0 + k) + y / (5.0 + 2 * k) + k)
        chans.append(base + rng.normal(0, 18, size=(h, w)))
    a = np.clip(np.stack(chans, axis=-1), 0, 255).astype(np.uint8)
    return a


def exif_orientation_6():
    ex = Image.Exif()
    ex[0x0112] = 6  # Orientation: rotate 90 CW to display
    return ex.tobytes()


def main():
    print("Pillow", Image.__version__ if hasattr(Image, "__version__") else "?", "libjpeg", features.version("jpg"))
    rgb = Image.fromarray(content(48, 64, 3, 1), "RGB")
    odd = Image.fromarray(content(23, 37, 3, 2), "RGB")
    grey = Image.fromarray(content(30, 41, 1, 3)[..., 0], "L")
    cmyk = Image.fromarray(content(24, 32, 4, 4), "CMYK")
    files = {
        "baseline420.jpg": (rgb, dict(quality=85, subsampling=2)),
        "baseline444.jpg": (rgb, dict(quality=90, subsampling=0)),
        "baseline422.jpg": (rgb, dict(quality=80, subsampling=1)),
        "progressive420.jpg": (rgb, dict(quality=85, subsampling=2, progressive=True)),
        "odd37x23_420.jpg": (odd, dict(quality=75, subsampling=2)),
        "odd37x23_progressive.jpg": (odd, dict(quality=92, subsampling=2, progressive=True)),
        "grey.jpg": (grey, dict(quality=85)),
        "cmyk_adobe.jpg": (cmyk, dict(quality=90)),
        "exif_orientation6.jpg": (odd, dict(quality=85, subsampling=2, exif=exif_orientation_6())),
    }
    refs = {}
    for name, (im, kw) in files.items():
        path = os.path.join(HERE, name)
        im.save(path, "JPEG", **kw)
        with Image.open(path) as f:
            key = name[:-4]
            refs[key] = np.asarray(f.convert("RGB"), dtype=np.uint8)
            if name in ("baseline420.jpg", "cmyk_adobe.jpg"):
                refs[key + "_L"] = np.asarray(f.convert("L"), dtype=np.uint8)
            print(f"{name}: {f.mode} {f.size} progressive={f.info.get('progressive', 0)} "
                  f"{os.path.getsize(path)} bytes")
    np.savez(os.path.join(HERE, "refs.npz"), **refs)


if __name__ == "__main__":
    main()
