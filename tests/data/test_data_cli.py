"""`detcli data ...` on real files: VisDrone preparation, a deliberately broken dataset, conversions, download."""

import http.server
import json
import shutil
import threading
import zipfile
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from detcli.cli import cli
from engine.data.download import download
from engine.data.formats.coco import read_coco
from engine.data.formats.voc import read_voc
from engine.data.formats.yolo import load_records, read_classes


def _run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture()
def visdrone_src(data_dir, tmp_path):
    src = tmp_path / "src" / "VisDrone2019-DET-train"
    src.mkdir(parents=True)
    sample = data_dir / "visdrone-det-sample"
    (src / "images").symlink_to(sample / "images")
    (src / "annotations").symlink_to(sample / "annotations")
    return tmp_path / "src"


def test_visdrone_prepare_check_stats_preview(visdrone_src, data_dir, tmp_path):
    dst = tmp_path / "yolo"
    r = _run("data", "prepare", "visdrone", "--src", str(visdrone_src), "--dst", str(dst))
    assert r.exit_code == 0, r.output
    assert "2012 boxes (20 ignored regions" in r.output
    records, problems = load_records(dst, "train.csv", read_classes(dst))
    assert problems == [] and sum(len(rec.boxes) for rec in records) == 2012
    ignore_rows = sum(len(p.read_text().splitlines()) for p in (dst / "ignore").glob("*.txt"))
    assert ignore_rows == 20
    third = data_dir / "visdrone-det-sample" / "labels_yolo"
    for f in (dst / "labels").glob("*.txt"):
        np.testing.assert_allclose(np.loadtxt(f, ndmin=2), np.loadtxt(third / f.name, ndmin=2), atol=1e-6)
    r = _run("data", "check", str(dst), "--json")
    assert r.exit_code == 0, r.output  # warnings only (tiny objects, imbalance)
    assert json.loads(r.output)["boxes"] == 2012
    r = _run("data", "stats", str(dst), "--split", "train", "--png", str(tmp_path / "stats.png"))
    assert r.exit_code == 0 and (tmp_path / "stats.png").is_file()
    r = _run(
        "aug-preview",
        "--preset",
        "visdrone",
        f"data.root={dst}",
        "-n",
        "2",
        "--out",
        str(tmp_path / "a.png"),
        "data.imgsz=320",
    )
    assert r.exit_code == 0, r.output
    assert cv2.imread(str(tmp_path / "a.png")) is not None


def _broken_dataset(root: Path, data_dir: Path) -> Path:
    imgs = sorted((data_dir / "raccoon-voc").rglob("*.jpg"))[:6]
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("raccoon\n")
    for i, src in enumerate(imgs[:5]):
        shutil.copy(src, root / "images" / f"im{i}.jpg")
        (root / "labels" / f"im{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    data = (root / "images" / "im0.jpg").read_bytes()
    (root / "images" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "labels" / "truncated.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "labels" / "im1.txt").write_text("0 0.5 0.5 0.2 0.2\n99 0.5 0.5 0.1 0.1\n")
    (root / "labels" / "im2.txt").write_text("0 1.4 0.5 0.2 0.2\n")
    (root / "labels" / "im3.txt").write_text("0 0.5 0.5 0.0 0.2\n")
    (root / "labels" / "im4.txt").unlink()  # missing label file
    shutil.copy(root / "images" / "im0.jpg", root / "images" / "im0_copy.jpg")
    (root / "labels" / "im0_copy.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "train.csv").write_text("images/im0.jpg\nimages/im1.jpg\nimages/im2.jpg\nimages/im3.jpg\n")
    (root / "val.csv").write_text("images/im0_copy.jpg\nimages/im4.jpg\nimages/truncated.jpg\n")
    return root


def test_broken_dataset_one_finding_per_defect(data_dir, tmp_path):
    root = _broken_dataset(tmp_path / "broken", data_dir)
    r = _run("data", "check", str(root), "--json")
    assert r.exit_code == 1
    rep = json.loads(r.output)
    f = {(x["kind"], Path(x["path"]).name, x["line"]) for x in rep["findings"]}
    assert ("corrupt image", "truncated.jpg", None) in f
    assert ("bad label", "im1.txt", 2) in f  # class 99
    assert ("bad label", "im2.txt", 1) in f  # coordinates > 1
    assert ("bad label", "im3.txt", 1) in f  # empty box
    assert ("missing label", "im4.txt", None) in f
    assert ("leakage", "im0_copy.jpg", None) in f  # duplicate across train/val
    messages = {x["kind"]: x["message"] for x in rep["findings"]}
    assert "class id 99" in json.dumps(rep) and "across splits" in messages["leakage"]
    r = _run("data", "check", str(root), "--fix", str(tmp_path / "fixed"))
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "truncated.jpg" in (tmp_path / "fixed" / "quarantine.txt").read_text()
    assert (root / "images" / "truncated.jpg").is_file()  # never modified in place


def test_voc_and_coco_convert_round_trip(data_dir, tmp_path):
    bccd = data_dir / "bccd-voc" / "BCCD"
    recs, names, problems = read_voc(bccd / "Annotations", bccd / "JPEGImages")
    assert sum("zero-area" in str(p) for p in problems) == 2
    r = _run("data", "convert", str(bccd), str(tmp_path / "yolo"), "--from", "voc", "--to", "yolo")
    assert r.exit_code == 0, r.output
    r = _run(
        "data", "convert", str(tmp_path / "yolo"), str(tmp_path / "coco"), "--from", "yolo", "--to", "coco"
    )
    assert r.exit_code == 0, r.output
    back, back_names, _, _ = read_coco(tmp_path / "coco" / "annotations.json", tmp_path / "yolo" / "images")
    assert back_names == names
    by_name = {Path(rr.path).name: rr for rr in recs}
    for rr in back:
        orig = by_name[Path(rr.path).name]
        np.testing.assert_allclose(rr.boxes, orig.boxes, atol=1e-3)  # 6-decimal YOLO text at 640 px
        assert rr.labels.tolist() == orig.labels.tolist()


def test_coco_missing_image_is_reported_not_fatal(data_dir):
    recs, names, _, problems = read_coco(data_dir / "aerial-terrain" / "terrain_all_coco.json")
    assert any("terrain3.png" in str(p) and "missing" in str(p) for p in problems)
    assert len(recs) >= 2 and names


def test_split_groups_by_scene(tmp_path):
    (tmp_path / "images").mkdir()
    for seq in range(5):
        for f in range(4):
            cv2.imwrite(str(tmp_path / "images" / f"uav{seq}_{f:03d}.jpg"), np.zeros((8, 8, 3), np.uint8))
    r = _run("data", "split", str(tmp_path), "--val", "0.2", "--test", "0.2", "--group-by", r"(uav\d+)_")
    assert r.exit_code == 0, r.output
    seqs = {
        s: {ln.split("/")[1].split("_")[0] for ln in (tmp_path / f"{s}.csv").read_text().split()}
        for s in ("train", "val", "test")
    }
    assert not (seqs["train"] & seqs["val"]) and not (seqs["train"] & seqs["test"]) and len(seqs["val"]) == 1


def test_download_resumes_and_checks(tmp_path):
    payload = tmp_path / "serve" / "VisDrone2019-DET-train.zip"
    payload.parent.mkdir()
    with zipfile.ZipFile(payload, "w") as z:
        z.writestr("VisDrone2019-DET-train/annotations/a.txt", "1,2,3,4,1,4,0,0\n" * 500)
    import hashlib

    md5 = hashlib.md5(payload.read_bytes()).hexdigest()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def send_head(self):  # minimal Range support
            rng = self.headers.get("Range")
            path = Path(self.translate_path(self.path))
            if not rng or not path.is_file():
                return super().send_head()
            start = int(rng.split("=")[1].split("-")[0])
            data = path.read_bytes()[start:]
            self.send_response(206)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            import io

            return io.BytesIO(data)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Handler, directory=str(payload.parent))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{payload.name}"
        dest = tmp_path / "dl" / payload.name
        dest.parent.mkdir()
        (dest.parent / (payload.name + ".part")).write_bytes(
            payload.read_bytes()[:100]
        )  # an interrupted download
        seen = []
        download(url, dest, md5=md5, progress=lambda d, t: seen.append((d, t)))
        assert dest.read_bytes() == payload.read_bytes()
        assert seen[0][1] == payload.stat().st_size  # resumed: total = 100 already there + the rest
        with pytest.raises(ValueError, match="checksum mismatch"):
            download(url, tmp_path / "dl" / "again.zip", md5="0" * 32)
    finally:
        server.shutdown()
