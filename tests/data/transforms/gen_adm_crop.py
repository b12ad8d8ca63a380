# Regenerates the adm_crop_*.u8 fixtures of test_data_transforms.cpp (run from this directory;
# needs Debian's python3-pil and python3-numpy). The ADM center crop, written out from its
# description: halve with BOX while the short side >= 2*size, BICUBIC-resize so the short side
# is `size` (long side rounded with Python's round), then take the centered size x size crop.
# Pillow does the resampling, so the fixtures pin redi's resampler to Pillow's output.
import numpy as np
from PIL import Image


def adm_crop(img, size):
    while min(img.size) >= 2 * size:
        img = img.resize((img.size[0] // 2, img.size[1] // 2), resample=Image.BOX)
    s = size / min(img.size)
    img = img.resize((round(img.size[0] * s), round(img.size[1] * s)), resample=Image.BICUBIC)
    a = np.asarray(img)
    top, left = (a.shape[0] - size) // 2, (a.shape[1] - size) // 2
    return a[top:top + size, left:left + size]


def pattern(h, w):  # the same pattern as adm_pattern() in test_data_transforms.cpp
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    return ((x * 7 + y * 13 + c * 29 + (x * y) % 17 + (x * x * 3 + y) % 41) % 256).astype(np.uint8)


for (h, w, size) in [(37, 53, 16), (100, 70, 16), (40, 40, 12)]:
    out = adm_crop(Image.fromarray(pattern(h, w)), size)
    out.tofile(f"adm_crop_{h}x{w}_{size}.u8")
