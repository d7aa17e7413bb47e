"""The scale machinery of `detcli data check`: indexed near-duplicate search, process pool, result cache."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from detcli.cli import cli
from engine.data import checks, file_stat, near_dup
from engine.data.checks import check_dataset
from engine.data.file_walk import files_under
from engine.data.formats.yolo import load_records, parse_label_text, read_classes
from engine.data.image_hash import dhash
from engine.data.label_batch import parse_label_batch
from engine.data.near_dup import near_duplicate_pairs, near_duplicate_pairs_pairwise
from engine.data.synth import generate


def _planted(rng, n, k):
    h = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64) * np.uint64(2) + rng.integers(
        0, 2, n
    ).astype(np.uint64)
    for _ in range(n // 10):  # near copies at every distance up to k + 2 (some just outside the radius)
        i, j = rng.integers(0, n, 2)
        flips = rng.choice(64, size=int(rng.integers(0, k + 3)), replace=False)
        h[j] = h[i] ^ np.uint64(sum(1 << int(b) for b in flips))
    return h


def test_indexed_search_reports_exactly_the_pairwise_pairs():
    rng = np.random.default_rng(0)
    for k in (0, 1, 4, 7, 12):
        h = _planted(rng, 1500, k)
        got, ref = near_duplicate_pairs(h, k), near_duplicate_pairs_pairwise(h, k)
        assert len(ref) >= 30  # planted pairs are found, not only random ones
        np.testing.assert_array_equal(got, ref)


def test_dhash_bits_are_read_most_significant_first():
    img = np.random.default_rng(1).integers(0, 255, (40, 50, 3), np.uint8)
    g = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), (9, 8), interpolation=cv2.INTER_AREA)
    assert dhash(img) == int("".join("1" if b else "0" for b in (g[:, 1:] > g[:, :-1]).flatten()), 2)


def _near_pairs(rep):
    return {(f["path"], f["message"]) for f in rep.findings if "near duplicate" in f.message}


def test_check_in_pool_with_cache_matches_serial_and_pairwise(tmp_path):
    root = tmp_path / "ds"
    generate(root, images=300, size=64, seed=3)

    def blurred(p):
        return cv2.GaussianBlur(cv2.imread(str(p)), (3, 3), 0)

    def near(p):  # a blurred copy of a 64 px image can drift past the radius: plant only copies within it
        img = cv2.imread(str(p))
        return bin(dhash(img) ^ dhash(blurred(p))).count("1") <= 2

    def listed(split):
        return [root / ln.strip() for ln in (root / f"{split}.csv").read_text().splitlines() if ln.strip()]

    a_train = next(p for p in listed("train") if near(p))
    a_val = next(p for p in listed("val") if near(p))
    for src, name in ((a_train, "zz_blur_in"), (a_val, "zz_blur_across")):
        cv2.imwrite(str(root / "images" / f"{name}.jpg"), blurred(src))
    with open(
        root / "train.csv", "a"
    ) as f:  # one planted copy in the train split, so one leaks across splits
        f.write("images/zz_blur_across.jpg\nimages/zz_blur_in.jpg\n")
    serial = check_dataset(root, use_cache=False, workers=1)
    pooled = check_dataset(root, workers=2)
    assert pooled.to_dict() == serial.to_dict()
    assert (root / ".detcli-cache").is_dir()
    cached = check_dataset(root, workers=2)
    assert cached.to_dict() == serial.to_dict()
    paths = sorted((root / "images").glob("*.jpg"))
    hashes = np.array([dhash(cv2.imread(str(p))) for p in paths], np.uint64)
    ref = {
        (str(paths[j]), f"near duplicate (hash distance {d}) of {paths[i]}")
        for i, j, d in near_duplicate_pairs_pairwise(hashes, 4)
    }
    got = {(f.path, f.message.split(" across")[0]) for f in serial.findings if "near duplicate" in f.message}
    assert got == ref and any("zz_blur" in p for p, _ in got)
    assert any(f.kind == "leakage" and "zz_blur_across" in f.path for f in serial.findings)


def test_cache_rechecks_a_changed_label_and_no_cache_bypasses(tmp_path):
    root = tmp_path / "ds"
    generate(root, images=20, size=64, seed=0)
    assert not check_dataset(root).errors
    label = sorted((root / "labels").glob("*.txt"))[0]
    label.write_text("0 1.5 0.5 0.1 0.1\n")
    os.utime(label, ns=(1, 1))  # a different mtime even on coarse-clock file systems
    rep = check_dataset(root)
    assert [(f.kind, f.path, f.line) for f in rep.errors] == [("bad label", str(label), 1)]
    shutil.rmtree(root / ".detcli-cache")
    r = CliRunner().invoke(cli, ["data", "check", str(root), "--json", "--no-cache"], catch_exceptions=False)
    assert r.exit_code == 1 and json.loads(r.output.splitlines()[-1])["n_errors"] == 1
    assert not (root / ".detcli-cache").exists()


def test_records_use_the_size_cache_and_a_damaged_cache_is_ignored(tmp_path):
    root = tmp_path / "ds"
    generate(root, images=10, size=64, seed=0)
    first, _ = load_records(root, "images", read_classes(root))
    cache = next((root / ".detcli-cache").glob("sizes-*.json"))
    cache.write_text("{not json")
    again, _ = load_records(root, "images", read_classes(root))
    assert [(r.path, r.width, r.height) for r in again] == [(r.path, r.width, r.height) for r in first]
    assert json.loads(cache.read_text())["files"]


def _random_label_text(rng) -> str:
    rows: list[str] = []
    for _ in range(int(rng.integers(0, 7))):
        c, cx, cy, w, h = int(rng.integers(0, 4)), *rng.uniform(0, 1, 4).round(4)
        row = [str(c), str(cx), str(cy), str(w), str(h)]
        kind = rng.integers(0, 18)
        if kind == 0:
            row = row[:4]  # 4 values
        elif kind == 1:
            row[2] = "x"  # not a number
        elif kind == 2:
            row[0] = "7"  # class outside 0..3
        elif kind == 3:
            row[1] = "1.3"  # not normalised
        elif kind == 4:
            row[3] = "0"  # zero width
        elif kind == 5:
            row[0] = rng.choice(["nan", "inf", "2.7", "-0.4", "1e999"])
        elif kind == 9 and rows:
            rows.append(rows[-1])  # a repeated row
        elif kind == 10 and rows:
            rows.append(rows[-1].replace(" ", "  ", 1))  # equal values, other text: not a repeat
        elif kind == 11:  # values that only Python's float reads, or nothing reads
            row[int(rng.integers(1, 5))] = rng.choice(
                ["1e", "--1", ".", "+.5", "5e-1", "\u0663", "1_0", "0x1"]
            )
        elif kind == 12:
            row.append("0.1")  # 6 values
        elif kind == 13:
            row[1] += rng.choice(["\x0c", "\x0b", "\x1c", "\u00a0"])  # a line end or space of str's own
        rows.append(("  " if kind == 6 else "") + " ".join(row) + ("\t" if kind == 7 else ""))
        if kind == 8:
            rows.append("")  # blank lines do not shift the line numbers
    text = str(rng.choice(["\n", "\r\n", "\r"])).join(rows)
    return text + str(rng.choice(["", "\n", "\r", "\r\n"]))


def test_label_batch_parse_equals_the_row_by_row_parse():
    rng = np.random.default_rng(5)
    texts = [_random_label_text(rng) for _ in range(1200)]
    paths = [f"/ds/labels/f{i}.txt" for i in range(len(texts))]
    sizes = [(int(rng.integers(16, 2000)), int(rng.integers(16, 2000))) for _ in texts]
    for nc in (4, None):
        batch = parse_label_batch(texts, paths, sizes, nc)
        got = batch.files()
        for text, path, (w, h), (boxes, ids, problems), maybe in zip(
            texts, paths, sizes, got, batch.maybe_repeated, strict=True
        ):
            rb, ri, rp = parse_label_text(text, Path(path), w, h, nc)
            assert boxes.dtype == rb.dtype and boxes.tobytes() == rb.tobytes(), text
            assert ids.dtype == ri.dtype and ids.tolist() == ri.tolist(), text
            assert [str(p) for p in problems] == [str(p) for p in rp], text
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            assert maybe or len(set(lines)) == len(lines), text  # every file that repeats a row is flagged
            plain = re.fullmatch(r"[0-9. \t\r\n-]+", text)  # digits, points, spaces and line ends alone
            if plain and len(boxes) and not problems and len(set(map(tuple, boxes.tolist()))) == len(boxes):
                assert not maybe, text  # a clean file with no two equal rows is not compared as text
    assert sum(bool(p) for _, _, p in got) > 50 and sum(not p for _, _, p in got) > 50  # both paths ran


def test_listing_is_in_pathlib_order_and_skips_symlinked_folders(tmp_path):
    top = tmp_path / "images"
    for rel in ("b.jpg", "a/b.jpg", "a.b/c.jpg", "a-b.jpg", "A.jpg", ".hidden.jpg", "a/z/y.png"):
        (top / rel).parent.mkdir(parents=True, exist_ok=True)
        (top / rel).write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.jpg").write_bytes(b"x")
    (top / "linked").symlink_to(outside)  # rglob does not enter it
    (top / "one.jpg").symlink_to(outside / "o.jpg")  # but lists a symlinked file
    want = [str(p) for p in sorted(p for p in top.rglob("*") if p.is_file())]
    assert files_under(str(top)) == want and str(top / "one.jpg") in want


def test_cached_recheck_checks_no_file_and_rewrites_no_cache(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    generate(root, images=30, size=64, seed=2)
    first = check_dataset(root, workers=1)
    stamps = {p.name: p.stat().st_mtime_ns for p in (root / ".detcli-cache").iterdir()}

    def no_checks(*a, **k):
        raise AssertionError("a file was re-checked although nothing changed")

    monkeypatch.setattr(checks, "check_files", no_checks)
    assert check_dataset(root, workers=1).to_dict() == first.to_dict()
    assert {p.name: p.stat().st_mtime_ns for p in (root / ".detcli-cache").iterdir()} == stamps


def test_size_cache_keeps_the_other_splits(tmp_path):
    root = tmp_path / "ds"
    generate(root, images=20, size=64, seed=1)
    names = read_classes(root)
    train, _ = load_records(root, "train", names)
    val, _ = load_records(root, "val", names)
    cache = next((root / ".detcli-cache").glob("sizes-*.json"))
    stored = json.loads(cache.read_text())["files"]
    assert {str(r.path) for r in train + val} <= set(stored)


@pytest.mark.slow
def test_piped_check_prints_a_line_per_thousand_files(tmp_path):
    root = tmp_path / "ds"
    generate(root, images=2100, size=16, seed=0)
    r = subprocess.run(
        [sys.executable, "-m", "detcli.cli", "data", "check", str(root), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    done = [int(ln.split()[1].split("/")[0]) for ln in r.stderr.splitlines() if ln.startswith("checked ")]
    assert r.returncode in (0, 1) and done[-1] == 2100, r.stderr
    # a line on passing each thousand (files come in batches, so at or just past it) and one at the end
    thousands = [d // 1000 for d in done]
    assert sorted(set(thousands)) == [1, 2] and thousands == sorted(thousands), r.stderr
    assert len(done) <= 3 and len(set(done)) == len(done), r.stderr


def test_indexed_search_in_bounded_chunks_on_crowded_bands(monkeypatch):
    # low-entropy hashes crowd every band (a dataset of near-identical frames): the candidate pairs of a band
    # are then compared in many chunks, and still give exactly the pairwise pairs
    rng = np.random.default_rng(7)
    h = rng.integers(0, 2**14, size=1200).astype(np.uint64) << np.uint64(rng.integers(0, 50))
    h[::7] = h[0]  # and a run of identical hashes
    monkeypatch.setattr(near_dup, "_CHUNK", 500)
    for k in (0, 3, 6):
        got, ref = near_duplicate_pairs(h, k), near_duplicate_pairs_pairwise(h, k)
        assert len(ref) > 5000
        np.testing.assert_array_equal(got, ref)


def _agrees_with_a_fresh_check(root, **kw):
    cached = check_dataset(root, workers=1, **kw).to_dict()
    assert cached == check_dataset(root, use_cache=False, workers=1, **kw).to_dict()
    return cached


def test_whole_report_is_reused_until_anything_it_depends_on_changes(tmp_path, monkeypatch):
    monkeypatch.setattr(file_stat, "MIN_PATHS_TO_SPLIT", 2)  # the forked-child stats, on a small dataset
    root = tmp_path / "ds"
    generate(root, images=40, size=32, seed=4)
    first = _agrees_with_a_fresh_check(root)
    assert list((root / ".detcli-cache").glob("report-*.json"))

    def no_checks(*a, **k):
        raise AssertionError("a file was checked although the report could be reused")

    with monkeypatch.context() as m:
        m.setattr(checks, "check_files", no_checks)
        m.setattr(checks, "near_duplicate_pairs", no_checks)
        assert check_dataset(root, workers=1).to_dict() == first
    # a report entry someone edited (its key intact): no traceback, the dataset is checked again
    cache = next((root / ".detcli-cache").glob("report-*.json"))
    saved = json.loads(cache.read_text())
    key = next(iter(saved["files"]))
    saved["files"][key][1]["report"] = ["not", "a report"]
    cache.write_text(json.dumps(saved))
    assert check_dataset(root, workers=1).to_dict() == first

    # a label rewritten in place, same size, only the mtime tells
    label = sorted((root / "labels").glob("*.txt"))[3]
    text = label.read_text()
    label.write_text("7" + text[1:] if text else "")
    os.utime(label, ns=(10**9, 10**9))
    rep = _agrees_with_a_fresh_check(root)
    assert rep != first and any(f["path"] == str(label) and f["kind"] == "bad label" for f in rep["findings"])
    # an image added (an exact copy), one removed
    images = sorted((root / "images").glob("*.jpg"))
    shutil.copy(images[0], root / "images" / "zz_copy.jpg")
    images[5].unlink()
    rep = _agrees_with_a_fresh_check(root)
    assert any("zz_copy" in f["path"] for f in rep["findings"])
    # a split list, the class names, a setting
    rows = (root / "val.csv").read_text().splitlines()
    (root / "val.csv").write_text("\n".join([*rows, "images/zz_copy.jpg", "extra/outside.jpg"]) + "\n")
    rep = _agrees_with_a_fresh_check(root)
    assert any(f["kind"] == "missing image" and "outside.jpg" in f["path"] for f in rep["findings"])
    # a split row outside images/ that appears: no listing, stat or split list changes, yet the report does
    (root / "extra").mkdir()
    shutil.copy(images[1], root / "extra" / "outside.jpg")
    rep = _agrees_with_a_fresh_check(root)
    assert not any(f["kind"] == "missing image" and "outside.jpg" in f["path"] for f in rep["findings"])
    (root / "classes.txt").write_text("only\n")
    rep = _agrees_with_a_fresh_check(root)
    assert rep["class_counts"] != first["class_counts"]
    assert _agrees_with_a_fresh_check(root, min_px=1000.0) != rep  # every box "too small"


def test_stats_in_a_forked_child_equal_stats_in_one_process(tmp_path, monkeypatch):
    monkeypatch.setattr(file_stat, "MIN_PATHS_TO_SPLIT", 2)
    for i in range(9):
        (tmp_path / "a" / f"s{i % 2}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "a" / f"s{i % 2}" / f"f{i}.txt").write_bytes(b"x" * i)
    paths = [str(p) for p in sorted((tmp_path / "a").rglob("*.txt"))] + [str(tmp_path / "gone.txt")]
    table = file_stat.stat_table(paths)
    want = [(os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths[:-1]] + [(-1, -1)]
    assert table.tolist() == [list(w) for w in want]
    (tmp_path / "b").mkdir()
    stamps = file_stat.tree_stamps([str(tmp_path / "a"), str(tmp_path / "b")])
    assert stamps == [file_stat.tree_stamp(str(tmp_path / "a")), file_stat.tree_stamp(str(tmp_path / "b"))]
    with monkeypatch.context() as m:  # where scandir takes no descriptor (Windows): by path, the same stamp
        m.setattr(file_stat, "_dir_stats", None)
        m.setattr(file_stat.os, "supports_fd", set())
        assert file_stat.tree_stamp(str(tmp_path / "a")) == stamps[0]
    edited = tmp_path / "a" / "s1" / "f3.txt"
    edited.write_bytes(b"yyy")  # same size
    os.utime(edited, ns=(5, 5))
    assert file_stat.tree_stamp(str(tmp_path / "a")) != stamps[0]


def test_records_keep_image_order_with_unreadable_images(tmp_path):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    img = np.full((20, 30, 3), 90, np.uint8)
    for name in ("b.jpg", "d.jpg"):
        cv2.imwrite(str(root / "images" / name), img)
    for name in ("a_bad.jpg", "c_bad.png", "e_bad.jpg"):
        (root / "images" / name).write_text("not an image")
    (root / "labels" / "b.txt").write_text("0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n")
    for use_cache in (False, True, True):
        records, problems = load_records(root, "images", ["x", "y"], use_cache=use_cache)
        assert [(r.path.name, r.width, r.height, r.labels.tolist()) for r in records] == [
            ("b.jpg", 30, 20, [0]),
            ("d.jpg", 30, 20, []),
        ]
        assert [(Path(p.path).name, p.line) for p in problems] == [
            ("a_bad.jpg", None),
            ("b.txt", 2),
            ("c_bad.png", None),
            ("e_bad.jpg", None),
        ]


def test_repeated_label_rows_are_named_with_their_line(tmp_path):
    root = tmp_path / "ds"
    generate(root, images=3, size=32, seed=0)
    label = sorted((root / "labels").glob("*.txt"))[0]
    # the first copy is on line 3 of the file (the 2nd non-blank row)
    label.write_text("1 0.3 0.3 0.1 0.1\n\n0 0.5 0.5 0.2 0.2\n 0 0.5 0.5 0.2 0.2\t\n0 0.5 0.5 0.2 0.2\n")
    rep = check_dataset(root, use_cache=False, workers=1)
    rows = [(f.kind, f.path, f.line, f.message) for f in rep.findings if f.kind == "duplicate row"]
    assert rows == [("duplicate row", str(label), 3, "row repeated 3 times: '0 0.5 0.5 0.2 0.2'")]
    assert rep.boxes == sum(len(r.boxes) for r in load_records(root, "images", read_classes(root))[0])


def test_an_unreadable_split_list_is_a_finding_and_a_clean_error(tmp_path):
    root = tmp_path / "ds"
    generate(root, images=12, size=32, seed=1)
    (root / "val.csv").write_bytes(b"\xff\xfeimages/x.jpg\n")  # UTF-16 from a spreadsheet, say
    rep = check_dataset(root, workers=1)
    assert [(f.kind, f.path) for f in rep.errors if f.kind == "split list"] == [
        ("split list", str(root / "val.csv"))
    ]
    assert "UTF-8" in rep.errors[0].message
    for args in (
        ["data", "stats", str(root), "--split", "val"],
        ["data", "check", str(root), "--fix", str(tmp_path / "f")],
    ):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 1 and "Traceback" not in r.output and "val.csv" in r.output, r.output


def test_only_equal_bytes_are_exact_copies_even_with_equal_size_and_hash(tmp_path):
    root = tmp_path / "ds"
    generate(root, images=12, size=64, seed=2)
    img = cv2.imread(str(sorted((root / "images").glob("*.jpg"))[0]))
    twin = img.copy()
    twin[0, 0] ^= 1  # one bit of one pixel: the same hash and, uncompressed, the same size
    for name, pixels in (("a.bmp", img), ("b_copy.bmp", img), ("c_twin.bmp", twin), ("d_copy.bmp", twin)):
        cv2.imwrite(str(root / "images" / name), pixels)
    paths = {n: root / "images" / n for n in ("a.bmp", "b_copy.bmp", "c_twin.bmp", "d_copy.bmp")}
    assert len({p.stat().st_size for p in paths.values()}) == 1
    assert len({dhash(cv2.imread(str(p))) for p in paths.values()}) == 1
    assert paths["a.bmp"].read_bytes() != paths["c_twin.bmp"].read_bytes()
    rep = check_dataset(root, use_cache=False, workers=1)
    dups = {
        (Path(f.path).name, f.message.split(" of ")[0], Path(f.message.split(" of ")[1]).name)
        for f in rep.findings
        if f.kind == "duplicate image"
    }
    assert ("b_copy.bmp", "exact duplicate", "a.bmp") in dups
    assert ("d_copy.bmp", "exact duplicate", "c_twin.bmp") in dups
    assert ("c_twin.bmp", "near duplicate (hash distance 0)", "a.bmp") in dups  # equal hash, other bytes
    assert not any(d[0] == "c_twin.bmp" and d[1] == "exact duplicate" for d in dups)
    # each file's findings in the order of the files, its exact-copy finding first
    order = [Path(f.path).name for f in rep.findings if f.path.endswith(".bmp") or f.path.endswith(".txt")]
    assert order.index("b_copy.bmp") < order.index("b_copy.txt") < order.index("d_copy.bmp")
    assert check_dataset(root, workers=2).to_dict() == rep.to_dict()


def test_plain_split_lists_read_as_the_csv_reader_reads_them(tmp_path):
    import csv

    from engine.data.formats import yolo

    rng = np.random.default_rng(4)
    parts = [
        "images/a.jpg",
        "  images/b b.jpg ",
        "",
        "\t",
        "x",
        "\r",
        "\n",
        "\r\n",
        "images/é.jpg",
        " , ",
        '"q"',
    ]
    parts += ["\x0b", "\u2028", "\x1c", "\x85"]
    plain = 0
    for _ in range(600):
        path = tmp_path / "train.csv"
        path.write_text("".join(rng.choice(parts, int(rng.integers(0, 12)))), encoding="utf-8", newline="")
        with open(path, newline="") as f:
            want = [r[0].strip() for r in csv.reader(f) if r and r[0].strip()]
        got = yolo._plain_split_rows(path)
        plain += got is not None
        assert got is None or got == want
        assert yolo.split_rows(path) == want
    assert plain > 100  # the plain reader ran


def test_a_damaged_per_file_cache_entry_is_checked_again(tmp_path):
    root = tmp_path / "ds"
    generate(root, images=12, size=64, seed=5)
    fresh = check_dataset(root, use_cache=False, workers=1).to_dict()
    assert check_dataset(root, workers=1).to_dict() == fresh
    cache = next((root / ".detcli-cache").glob("check-*.json"))
    saved = json.loads(cache.read_text())
    damage = [
        ["ok"],
        ["ok", None, 1, None, 64, 64, "empty", [], 0, []],
        ["what", None, 1, 5, 64, 64, "", [], 0, []],
    ]
    damage += [["ok", None, "x", 5, 64, 64, "labelled", [["a"]], 1, ["y"]], "not a list"]
    for entry, bad in zip(saved["files"].values(), damage, strict=False):
        entry[1] = bad
    cache.write_text(json.dumps(saved))
    # (the whole report would be reused as it is: without it, the check reads the per-file entries)
    next((root / ".detcli-cache").glob("report-*.json")).unlink()
    assert check_dataset(root, workers=1).to_dict() == fresh
