"""The data check's native kernels (C, built by `pip install` where a compiler is found) give what their Python
paths give, bit for bit: the difference hash OpenCV's resize gives, the stamps and stats os.scandir/os.stat give."""

import os
import platform
import warnings

import cv2
import numpy as np
import pytest

from engine.data import file_stat, image_hash
from engine.data.image_hash import HashBatch, dhash, hash_thumbnails, native_kernel, thumbnail

area_dhash = pytest.importorskip("engine.data._area_dhash", reason="native kernels not built (no C compiler)")
dir_stats = pytest.importorskip("engine.data._dir_stats", reason="native kernels not built (no C compiler)")


def _opencv_hash(grey: np.ndarray) -> int:
    return hash_thumbnails([thumbnail(grey)])[0]


def _images(rng, count: int):
    """BGR images of random shapes and kinds: noise, two-level (cell averages at x.5), gradients, flat."""
    for i in range(count):
        h, w = int(rng.integers(1, 160)), int(rng.integers(1, 160))
        kind = i % 4
        if kind == 0:
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        elif kind == 1:
            img = np.full((h, w, 3), rng.integers(0, 255, 3), np.uint8) + (rng.random((h, w, 1)) < 0.5)
        elif kind == 2:
            ramp = np.add.outer(np.arange(h), np.arange(w)) * int(rng.integers(1, 9))
            img = np.repeat((ramp % 256).astype(np.uint8)[:, :, None], 3, axis=2)
        else:
            img = np.full((h, w, 3), rng.integers(0, 256, 3), np.uint8)
        yield img.astype(np.uint8)


def test_native_hash_is_opencvs_bit_for_bit():
    # OpenCV's area resize is baseline code on x86 (no per-CPU dispatch, no fused multiply-add), so there the
    # kernel must match; elsewhere a compiler may fuse OpenCV's arithmetic, and the self-check then falls back
    if native_kernel() is None and platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(
            f"OpenCV's area resize differs from the kernel on {platform.machine()}: cv2's path is used"
        )
    assert native_kernel() is area_dhash.dhash
    rng = np.random.default_rng(7)
    compared = 0
    for img in _images(rng, 3000):
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        got = area_dhash.dhash(grey)
        if got is None:  # another OpenCV path: a copy (9x8), an enlargement, whole blocks
            h, w = grey.shape
            assert (h, w) == (8, 9) or h < 8 or w < 9 or (w % 9 == 0 and h % 8 == 0)
            continue
        compared += 1
        assert got == _opencv_hash(grey), grey.shape
    assert compared > 2500
    # strided views (a crop, every other column) read as they are laid out
    big = rng.integers(0, 256, (300, 400), dtype=np.uint8)
    for view in (big[10:250, 7:333], big[:, ::2], big[::3, ::-1]):
        assert area_dhash.dhash(view) == _opencv_hash(np.ascontiguousarray(view))
    # not a 2-D uint8 image: the caller's path
    assert area_dhash.dhash(np.zeros((64, 64), np.float32)) is None
    assert area_dhash.dhash(np.zeros((64, 64, 3), np.uint8)) is None


def test_hash_batch_gives_the_same_hashes_with_and_without_the_kernel(monkeypatch):
    rng = np.random.default_rng(8)
    images = [*_images(rng, 400), np.zeros((8, 9, 3), np.uint8), np.full((4, 4, 3), 9, np.uint8)]
    with_kernel = HashBatch()
    for img in images:
        with_kernel.add(img)
    monkeypatch.setattr(image_hash, "native_kernel", lambda: None)
    without = HashBatch()
    for img in images:
        without.add(img)
    assert with_kernel.hashes().tolist() == without.hashes().tolist()
    assert [dhash(img) for img in images[:50]] == with_kernel.hashes().tolist()[:50]


def test_a_kernel_that_differs_from_opencv_is_not_used(monkeypatch):
    monkeypatch.setattr(area_dhash, "dhash", lambda grey: 1 if grey.shape == (48, 64) else None)
    native_kernel.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert native_kernel() is None
        assert any("differs from OpenCV" in str(w.message) for w in caught)
    finally:
        monkeypatch.undo()
        native_kernel.cache_clear()
    assert native_kernel() is area_dhash.dhash


def _tree(root):
    """Files, nested folders, an empty folder, symlinks (to a file, to a folder, broken), a name that is not
    UTF-8."""
    (root / "a" / "b").mkdir(parents=True)
    (root / "empty").mkdir()
    for i in range(30):
        (root / ("a" if i % 3 else "a/b") / f"f{i}.txt").write_bytes(b"x" * i)
    os.symlink(root / "a" / "f1.txt", root / "link_to_file")
    os.symlink(root / "a", root / "link_to_folder")
    os.symlink(root / "nowhere", root / "broken_link")
    with open(os.path.join(os.fsencode(root), b"caf\xe9.txt"), "wb") as f:
        f.write(b"latin-1 name")
    os.utime(root / "a" / "f4.txt", ns=(1, 123456789))


def test_native_stamps_and_stats_equal_pythons(tmp_path, monkeypatch):
    _tree(tmp_path / "t")
    folders = [str(tmp_path / "t"), str(tmp_path / "t" / "a"), str(tmp_path / "missing")]
    native = [file_stat.tree_stamp(f) for f in folders]
    paths = [str(p) for p in sorted((tmp_path / "t").rglob("*"))] + [str(tmp_path / "gone")]
    native_table = file_stat.stat_table(paths)
    listed = dir_stats.listing(str(tmp_path / "t"))
    assert listed[0] == 4 and sorted(listed[3].split(b"\0")[:-1]) == [b"a", b"empty"]
    assert dir_stats.listing(str(tmp_path / "missing")) is None
    monkeypatch.setattr(file_stat, "_dir_stats", None)
    assert [file_stat.tree_stamp(f) for f in folders] == native
    assert file_stat.stat_table(paths).tolist() == native_table.tolist()
    assert native_table[-1].tolist() == [-1, -1]
    assert native_table[paths.index(str(tmp_path / "t" / "a" / "f4.txt"))].tolist() == [4, 123456789]
