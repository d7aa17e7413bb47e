"""`read_image` gives exactly what `cv2.imread` gives (pixels, EXIF orientation, reduced sizes, failures), on
real photos and on made-up edge cases: grey and CMYK JPEGs, every EXIF orientation, damaged files, other formats."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.data.decode import REDUCED_FLAGS, exif_orientation, read_image


def _same_as_opencv(path, reduce=1):
    ours, theirs = read_image(path, reduce), cv2.imread(str(path), REDUCED_FLAGS[reduce])
    if theirs is None:
        assert ours is None
        return
    assert ours is not None and ours.dtype == np.uint8
    assert ours.shape == theirs.shape
    assert np.array_equal(ours, theirs)


def _photo(seed=0, h=96, w=160):
    rng = np.random.default_rng(seed)
    base = cv2.resize(
        rng.integers(0, 256, (h // 8, w // 8, 3), np.uint8), (w, h), interpolation=cv2.INTER_CUBIC
    )
    return np.clip(base.astype(int) + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("reduce", [1, 2, 4, 8])
def test_real_photos(data_dir, reduce):
    paths = sorted((data_dir / "visdrone-det-mini" / "images").glob("*.jpg"))
    paths += sorted((data_dir / "raccoon-voc").rglob("*.jpg"))[:4]
    assert paths
    for p in paths:
        _same_as_opencv(p, reduce)


@pytest.mark.parametrize("subsampling", [0, 1, 2])  # 4:4:4, 4:2:2, 4:2:0
@pytest.mark.parametrize("size", [(96, 160), (37, 53)])  # odd sizes: the ceiling in reduced decodes
def test_chroma_subsampling_and_odd_sizes(tmp_path, subsampling, size):
    path = tmp_path / "a.jpg"
    Image.fromarray(_photo(1, *size)[:, :, ::-1]).save(path, quality=90, subsampling=subsampling)
    for reduce in (1, 2, 4, 8):
        _same_as_opencv(path, reduce)


def test_grey_and_cmyk_jpegs(tmp_path):
    grey, cmyk = tmp_path / "grey.jpg", tmp_path / "cmyk.jpg"
    Image.fromarray(_photo(2)[:, :, 0]).save(grey, quality=90)
    Image.fromarray(_photo(3)[:, :, ::-1]).convert("CMYK").save(cmyk, quality=90)
    for p in (grey, cmyk):
        _same_as_opencv(p)
        _same_as_opencv(p, 2)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_opencv(tmp_path, orientation):
    path = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(_photo(4, 64, 128)[:, :, ::-1]).save(path, quality=92, exif=exif.tobytes())
    assert exif_orientation(path.read_bytes()) == orientation
    _same_as_opencv(path)
    _same_as_opencv(path, 2)
    if orientation in (5, 6, 7, 8):  # a quarter turn: portrait out of a landscape file
        assert read_image(path).shape[:2] == (128, 64)


def test_big_endian_exif_and_junk_exif(tmp_path):
    # Pillow writes little-endian TIFF; a camera may write big-endian
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"
    app1 = b"Exif\0\0" + tiff
    jpeg = io.BytesIO()
    Image.fromarray(_photo(5)[:, :, ::-1]).save(jpeg, format="JPEG", quality=90)
    raw = jpeg.getvalue()
    with_exif = raw[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + raw[2:]
    assert exif_orientation(with_exif) == 6
    path = tmp_path / "be.jpg"
    path.write_bytes(with_exif)
    _same_as_opencv(path)
    junk = raw[:2] + b"\xff\xe1\x00\x0cExif\0\0MMxx" + raw[2:]
    assert exif_orientation(junk) == 1


def test_damaged_missing_and_other_formats(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(_photo(6)[:, :, ::-1]).save(good, quality=90)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff" + b"not a jpeg at all" * 10)
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), _photo(7))
    for p in (truncated, garbage, text, png):
        _same_as_opencv(p)
    assert read_image(text) is None
    assert read_image(tmp_path / "missing.jpg") is None
    with pytest.raises(ValueError, match="reduce"):
        read_image(good, 3)
