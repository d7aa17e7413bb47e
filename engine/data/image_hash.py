"""The 64-bit difference hash of an image: its 9x8 grey thumbnail (OpenCV's INTER_AREA resize), each pixel
compared with its right neighbour. Near-duplicate frames differ in a few bits; exact copies share all 64.

The thumbnail's resize is OpenCV's general area path, scalar code that costs a seventh of decoding a small image;
where the native kernel (`_area_dhash`, built from C by `pip install`) is present and gives OpenCV's bits on
this install, it computes the hash instead. Either way the bits are OpenCV's: cached results and reported
duplicates do not depend on which ran.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import cv2
import numpy as np

THUMB_SIZE = (9, 8)  # (width, height): 8 comparisons in each of 8 rows


def grey_of(image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The grey image of a BGR one, as OpenCV converts it; written into `out` where it has the image's size
    (OpenCV allocates a new array otherwise, which is what is returned)."""
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY, out)


def thumbnail(grey: np.ndarray) -> np.ndarray:
    """The (8, 9) thumbnail of a grey image whose neighbouring pixels the hash compares."""
    return cv2.resize(grey, THUMB_SIZE, interpolation=cv2.INTER_AREA)


def hash_thumbnails(thumbs: list[np.ndarray]) -> list[int]:
    """The hash of each thumbnail, in a few array operations for all of them."""
    t = np.stack(thumbs)
    bits = (t[:, :, 1:] > t[:, :, :-1]).reshape(len(t), -1)
    # the first bit most significant, as int("0101...", 2) reads them: each row is one big-endian integer
    return np.packbits(bits, axis=1).view(">u8").ravel().tolist()


def dhash(image: np.ndarray) -> int:
    """The difference hash of a BGR image."""
    batch = HashBatch()
    batch.add(image)
    return int(batch.hashes()[0])


class HashBatch:
    """The hashes of a batch of images, added one at a time (so each image can be dropped as soon as it is
    added): the native kernel's hash where it applies, else the thumbnail, hashed with the others at the end."""

    def __init__(self) -> None:
        self._kernel = native_kernel()
        self._hashes: list[int] = []
        self._thumbs: list[np.ndarray] = []
        self._thumbs_at: list[int] = []
        # one grey image reused while the sizes repeat: a fresh array costs a third of the conversion of a
        # small image (neither the kernel nor a thumbnail keeps a reference to it)
        self._grey: np.ndarray | None = None

    def add(self, image: np.ndarray) -> None:
        grey = self._grey = grey_of(image, self._grey)
        h = self._kernel(grey) if self._kernel else None
        if h is None:  # no kernel, or a shape OpenCV resizes by another path (smaller than 9x8, whole blocks)
            self._thumbs_at.append(len(self._hashes))
            self._thumbs.append(thumbnail(grey))
            h = 0
        self._hashes.append(h)

    def hashes(self) -> np.ndarray:
        """uint64: the hash of each image, in the order added."""
        out = np.array(self._hashes, np.uint64)
        if self._thumbs:
            out[self._thumbs_at] = hash_thumbnails(self._thumbs)
        return out


@functools.cache
def native_kernel() -> Callable[[np.ndarray], int | None] | None:
    """The native hash of a grey image, if it is built and gives OpenCV's bits here (checked once per process on
    seeded images: a different OpenCV could resize differently), else None."""
    try:
        from engine.data import _area_dhash
    except ImportError:  # no C compiler at install time: OpenCV's path
        return None
    for grey in _self_check_images():
        got = _area_dhash.dhash(grey)
        if got is not None and got != hash_thumbnails([thumbnail(grey)])[0]:
            warnings.warn(
                f"the native image hash differs from OpenCV {cv2.__version__}'s resize on a {grey.shape} image: "
                "using OpenCV's (a slower data check, the same findings)",
                RuntimeWarning,
                stacklevel=2,
            )
            return None
    return _area_dhash.dhash


def _self_check_images() -> list[np.ndarray]:
    """Seeded grey images: noise (every tap weighted wrong shows), and two-level images whose cell averages sit
    at x.5 (where a sum in another order rounds the other way), at the sizes datasets have and odd ones. Small:
    each process makes them once, before its first hash."""
    shapes = [(64, 64), (48, 64), (120, 160), (37, 23), (8, 10), (9, 9), (17, 9), (30, 400), (133, 211)]
    images = []
    for seed, (h, w) in enumerate(shapes):
        noise = _noise(h * w, seed).reshape(h, w)
        images.append(noise)
        images.append((noise & 1) + np.uint8(seed * 23))
    return images


def _noise(n: int, seed: int) -> np.ndarray:
    """n pseudo-random bytes (splitmix64 of a counter: numpy.random's first use costs more than the check)."""
    x = (np.arange(n, dtype=np.uint64) + np.uint64(seed << 32)) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(24)).astype(np.uint8)
