"""Side by side with D-FINE-seg 0.6.2 (issue 18), in one run, interleaved ours / theirs (A B A B):

- train step: D-FINE-N and S, batch 4 at 640, forward + loss + backward + optimizer step (ms, ours / theirs);
- loader: each side's train loader with mosaic on every sample, on the same VisDrone images, same batch, size and
  workers (images/s, ours / theirs; each delivers what its train step consumes: float input in [0, 1]);
- OpenVINO end to end: each side's own export of D-FINE-N (random weights) and its own inference wrapper on the
  same JPEGs (1080p VisDrone, 640x480 BCCD): read + pre + infer + post per image (ms, ours / theirs); and each
  side's compiled model alone on a preprocessed image, so a graph difference is told apart from a wrapper one.
  Where DETCLI_OFFICIAL_DFINE points at a checkout of the official D-FINE, its deployment graph (model +
  post-processor) and dfine-seg's IR are also timed model-only in our runtime beside ours;
- evaluation: their Validator against our DetectionEvaluator on the same predictions and ground truth (time,
  ours / theirs; and the mAP50 / F1 each reports).

The peer runs in its own interpreter (never a dependency of detcli): DFINE_SEG_PY names a python that can
`import dfine_seg` (`just peer-venv` makes one); without it this prints one line and writes nothing. The peer
side is benchmarks/_peer_dfine_seg_worker.py (DFINE_SEG_WORKER overrides it: the tests use a fake peer that
speaks the same protocol, see benchmarks/_peer_protocol.py).

Run: `DFINE_SEG_PY=../detcli-peers/venv/bin/python python benchmarks/peer_dfine_seg.py [--rounds 5]
[--only loader,openvino]` (parts: train_step, loader, openvino, eval). `just bench` sets DFINE_SEG_PY when
../detcli-peers/venv exists.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, save, shared_dir
from _official_dfine import OFFICIAL_EXPORT
from _peer_protocol import PeerWorker

from engine.config import AugsConfig, TrainConfig
from engine.data.dataset import DetectionDataset, to_model_input
from engine.data.decode import read_image
from engine.data.formats.visdrone import read_visdrone
from engine.data.loader import train_loader
from engine.export.run_export import export_checkpoint
from engine.infer import Predictor
from engine.metrics.evaluator import DetectionEvaluator
from engine.models import build_criterion, build_model, save_checkpoint
from engine.train.optim import build_optimizer

WORKER = Path(__file__).parent / "_peer_dfine_seg_worker.py"
PARTS = ("train_step", "loader", "openvino", "eval")
VISDRONE_NAMES = [
    "pedestrian", "people", "bicycle", "car", "van", "truck", "tricycle", "awning-tricycle", "bus", "motor"
]  # fmt: skip


def train_step_fn(size: str, batch: int, imgsz: int):
    """Our train step at the peer's settings: random weights and images, 2 boxes an image (cxcywh, normalised)."""
    torch.manual_seed(0)
    model, criterion = build_model(f"dfine-{size}"), build_criterion(f"dfine-{size}")
    model.train()
    opt = build_optimizer(model, TrainConfig())
    x = torch.rand(batch, 3, imgsz, imgsz)
    targets = [
        {"labels": torch.tensor([1, 2]), "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.3, 0.3, 0.1, 0.1]])}
        for _ in range(batch)
    ]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        losses = criterion(model(x, targets=targets), targets)
        sum(losses.values()).backward()
        opt.step()

    return step


def eval_data(n_images: int, seed: int = 0) -> dict:
    """Predictions and ground truth both sides score: GT boxes, jittered hits, misses and false positives."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n_images):
        n = int(rng.integers(1, 30))
        xy = rng.uniform(0, 560, (n, 2))
        gt = np.concatenate([xy, xy + rng.uniform(16, 80, (n, 2))], 1)
        gl = rng.integers(0, 5, n)
        keep = rng.random(n) < 0.8  # 20 % of the objects are missed
        pred = gt[keep] + rng.normal(0, 4, (int(keep.sum()), 4))
        pl = np.where(rng.random(len(pred)) < 0.9, gl[keep], rng.integers(0, 5, len(pred)))
        nfp = int(rng.integers(0, 10))
        fxy = rng.uniform(0, 560, (nfp, 2))
        pred = np.concatenate([pred, np.concatenate([fxy, fxy + 40], 1)])
        pl = np.concatenate([pl, rng.integers(0, 5, nfp)])
        ps = rng.uniform(0.05, 1.0, len(pred))
        images.append(
            {
                "gt_boxes": gt.tolist(),
                "gt_labels": gl.tolist(),
                "boxes": pred.tolist(),
                "scores": ps.tolist(),
                "labels": pl.tolist(),
            }
        )
    return {"class_names": [f"c{i}" for i in range(5)], "images": images}


def our_eval(data: dict) -> dict:
    """Our evaluator on `data`: the time to add every image and compute, and the figures it reports."""
    t = time.perf_counter()
    ev = DetectionEvaluator(data["class_names"], conf=0.5, iou=0.5)
    for i, im in enumerate(data["images"]):
        ev.add(i, im["boxes"], im["scores"], im["labels"], im["gt_boxes"], im["gt_labels"])
    res = ev.compute()
    return {"ms": (time.perf_counter() - t) * 1000, "map50": res.map50, "f1": res.f1}


def _ratio(ours: list[float], theirs: list[float]) -> float | None:
    if not ours or not theirs:
        return None
    return statistics.median(ours) / statistics.median(theirs)


def _spread(values: list[float]) -> float | None:
    """(max - min) / median of repeated measurements: how noisy they were."""
    return (max(values) - min(values)) / statistics.median(values) if len(values) > 1 else None


def bench_train_step(peer: PeerWorker, args) -> dict:
    out: dict = {"train_step": {}}
    ratios = []
    for size in args.sizes.split(","):
        ours_step = train_step_fn(size, args.batch, args.imgsz)
        task = {"task": "train_step", "size": size, "batch": args.batch, "imgsz": args.imgsz}
        ours_step()  # warm-up on both sides (first allocations, autograd graph caches)
        warm = peer.ask(task)
        ours, theirs, errors = [], [], []
        for _ in range(args.rounds):
            t = time.perf_counter()
            ours_step()
            ours.append((time.perf_counter() - t) * 1000)
            ans = peer.ask(task)
            (theirs.append(ans["ms"]) if "ms" in ans else errors.append(ans.get("error")))
        row = {
            "ours_ms": statistics.median(ours),
            "theirs_ms": statistics.median(theirs) if theirs else None,
            "ratio": _ratio(ours, theirs),
            "ours_spread": _spread(ours),
            "theirs_spread": _spread(theirs) if theirs else None,
            "errors": sorted({e for e in [*errors, warm.get("error")] if e}),
        }
        out["train_step"][f"dfine-{size}"] = row
        if row["ratio"] is not None:
            ratios.append(row["ratio"])
        print(f"train step dfine-{size} b{args.batch}@{args.imgsz}: {row}")
    out["train_step_ratio"] = max(ratios) if ratios else None  # the worse size
    return out


# -------------------------------------------------------------------------------------------------- loader


def loader_images(sd: Path | None, fake: Path | None = None) -> tuple[Path, Path, Path]:
    """(images, VisDrone annotations, YOLO labels) of the VisDrone sample; the test passes its own copy."""
    base = fake or (sd / "data" / "visdrone-det-sample" if sd else None)
    if base is None or not (base / "images").is_dir():
        raise SystemExit("peer_dfine_seg: the loader part needs ../shared/data/visdrone-det-sample")
    return base / "images", base / "annotations", base / "labels_yolo"


def their_root(records, labels_yolo: Path, root: Path) -> Path:
    """The same samples as a dfine-seg dataset root: images/ (links), labels/ (the YOLO conversion), train.csv
    (one row per sample, repeats included), a one-row val.csv (their Loader requires a val split)."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for img in sorted({r.path for r in records}):
        (root / "images" / img.name).symlink_to(img.resolve())
        src = labels_yolo / f"{img.stem}.txt"
        if src.is_file():
            (root / "labels" / src.name).write_text(src.read_text())
    rows = "".join(f"{r.path.name}\n" for r in records)
    (root / "train.csv").write_text(rows)
    (root / "val.csv").write_text(f"{records[0].path.name}\n")
    (root / "names.json").write_text(json.dumps(VISDRONE_NAMES))
    return root


def our_loader_epoch(ds: DetectionDataset, batch: int, workers: int, epoch: int) -> dict:
    """One epoch as our trainer runs it: a loader made for the epoch (its workers start with it), every batch
    turned into the model's float input."""
    t = time.perf_counter()
    n = 0
    for images, _ in train_loader(ds, batch, workers, seed=0, epoch=epoch):
        n += len(to_model_input(images, "cpu"))
    return {"images": n, "ms": (time.perf_counter() - t) * 1000}


def bench_loader(peer: PeerWorker, args, sd: Path | None, tmp: Path) -> dict:
    images, annotations, labels_yolo = loader_images(sd, Path(args.loader_data) if args.loader_data else None)
    base, _ = read_visdrone(images, annotations)
    records = (base * (args.loader_samples // len(base) + 1))[: args.loader_samples]
    root = their_root(records, labels_yolo, tmp / "dfine-seg-root")
    # their mosaic sample gets no colour / flip ops (its mosaic_transform only normalises): ours none either,
    # so both do the same work: 4 images decoded and fitted, the 2x2 canvas, the affine (scale 0.5-1.5,
    # translate 0.2, shear 2: the same defaults on both sides)
    augs = AugsConfig(
        mosaic={"prob": 1.0},
        close_mosaic=0,
        hflip=0,
        brightness_contrast=0,
        gamma=0,
        blur=0,
        noise=0,
        to_gray=0,
    )
    out: dict = {"samples": len(records), "batch": args.loader_batch, "imgsz": args.imgsz, "workers": {}}
    ratios = []
    for workers in [int(w) for w in args.loader_workers.split(",")]:
        ds = DetectionDataset(
            records, VISDRONE_NAMES, (args.imgsz, args.imgsz), False, "train", augs, epochs=10**6
        )
        task = {"task": "loader", "root": str(root), "batch": args.loader_batch, "workers": workers}
        task["imgsz"] = args.imgsz
        our_loader_epoch(ds, args.loader_batch, workers, 0)  # warm-up: their first epoch starts their workers
        warm = peer.ask(task)
        ours, theirs, errors = [], [], [warm.get("error")]
        for r in range(args.rounds):
            o = our_loader_epoch(ds, args.loader_batch, workers, r + 1)
            ours.append(o["images"] / o["ms"] * 1000)
            ans = peer.ask(task)
            if "ms" in ans:
                theirs.append(ans["images"] / ans["ms"] * 1000)
            else:
                errors.append(ans.get("error"))
        row = {
            "ours_img_s": statistics.median(ours),
            "theirs_img_s": statistics.median(theirs) if theirs else None,
            "ratio": statistics.median(ours) / statistics.median(theirs) if theirs else None,
            "ours_spread": _spread(ours),
            "theirs_spread": _spread(theirs) if theirs else None,
            "errors": sorted({e for e in errors if e}),
        }
        out["workers"][str(workers)] = row
        if row["ratio"] is not None:
            ratios.append(row["ratio"])
        print(f"loader mosaic p=1 {args.imgsz} batch {args.loader_batch} workers {workers}: {row}")
    out_ratio = min(ratios) if ratios else None  # images/s: the worse worker count is the smaller ratio
    return {"loader": out, "loader_ratio": out_ratio}


# -------------------------------------------------------------------------------------------------- OpenVINO


def ov_images(sd: Path | None, fake: Path | None = None) -> dict[str, list[Path]]:
    """The JPEG sets both wrappers read: VisDrone 1920x1080 and BCCD 640x480."""
    if fake is not None:
        return {"test": sorted(fake.glob("*.jpg"))}
    if sd is None:
        raise SystemExit("peer_dfine_seg: the openvino part needs ../shared/data")
    vis = sorted((sd / "data" / "visdrone-det-mini" / "images").glob("*.jpg"))
    return {
        "visdrone 1920x1080": [p for p in vis if read_image(p).shape[:2] == (1080, 1920)],
        "bccd 640x480": sorted((sd / "data" / "bccd-voc" / "BCCD" / "JPEGImages").glob("*.jpg"))[:6],
    }


def our_e2e(pred: Predictor, files: list[Path]) -> list[float]:
    """Per image: read + pre + infer + post through our Predictor."""
    times = []
    for f in files:
        t = time.perf_counter()
        pred.predict(read_image(f))
        times.append((time.perf_counter() - t) * 1000)
    return times


def _alternate(ours_fn, theirs_task: dict, peer: PeerWorker, rounds: int) -> tuple[list, list, list]:
    """Rounds of ours then theirs, each answering a list of per-image ms; returns both lists and errors."""
    ours, theirs, errors = [], [], []
    ours_fn()
    warm = peer.ask(theirs_task)
    errors.append(warm.get("error"))
    for _ in range(rounds):
        ours.extend(ours_fn())
        ans = peer.ask(theirs_task)
        theirs.extend(ans.get("ms", []))
        errors.append(ans.get("error"))
    return ours, theirs, [e for e in errors if e]


def bench_openvino(peer: PeerWorker, args, sd: Path | None, tmp: Path) -> dict:
    sets = ov_images(sd, Path(args.ov_images) if args.ov_images else None)
    size, imgsz = args.ov_size, args.imgsz
    torch.manual_seed(0)
    w = save_checkpoint(
        tmp / f"dfine-{size}.pt", build_model(f"dfine-{size}"), class_names=[str(i) for i in range(80)],
        imgsz=(imgsz, imgsz),
    )  # fmt: skip
    t = time.perf_counter()
    xml = export_checkpoint(w, "openvino").path
    ours_export_s = time.perf_counter() - t
    pred = Predictor.from_path(xml, conf=0.5)
    prep = peer.ask({"task": "ov_prepare", "size": size, "imgsz": imgsz, "dir": str(tmp)})
    out: dict = {
        "model": f"dfine-{size}",
        "imgsz": imgsz,
        "ours": {"export_s": ours_export_s, "precision": pred.backend.precision, "openvino": _ov_version()},
        "theirs": prep,
        "sets": {},
    }
    if "error" in prep:
        print(f"openvino: their export failed: {prep['error']}")
        return {"openvino": out, "openvino_end_to_end_ratio": None}
    ratios = []
    for name, files in sets.items():
        task = {
            "task": "ov_e2e",
            "size": size,
            "imgsz": imgsz,
            "dir": str(tmp),
            "files": [str(f) for f in files],
        }
        ours, theirs, errors = _alternate(lambda files=files: our_e2e(pred, files), task, peer, args.rounds)
        row = {
            "images": len(files),
            "ours_ms": statistics.median(ours),
            "theirs_ms": statistics.median(theirs) if theirs else None,
            "ratio": _ratio(ours, theirs),
            "errors": sorted(set(errors)),
        }
        out["sets"][name] = row
        if row["ratio"] is not None:
            ratios.append(row["ratio"])
        print(f"openvino dfine-{size} end to end, {name}: {row}")
    # model only: each side's compiled model on its own preprocessing of the same real image
    first = next(iter(sets.values()))[0]
    blob, _, sizes = pred.prepare(read_image(first))
    runs = max(5, args.ov_runs)

    def ours_model() -> list[float]:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            pred.backend.run(blob, sizes)
            times.append((time.perf_counter() - t) * 1000)
        return times

    task = {
        "task": "ov_model",
        "size": size,
        "imgsz": imgsz,
        "dir": str(tmp),
        "file": str(first),
        "runs": runs,
    }
    ours, theirs, errors = _alternate(ours_model, task, peer, args.rounds)
    out["model_only"] = {
        "ours_ms": statistics.median(ours),
        "theirs_ms": statistics.median(theirs) if theirs else None,
        "ratio": _ratio(ours, theirs),
        "errors": sorted(set(errors)),
    }
    print(f"openvino dfine-{size} model only: {out['model_only']}")
    out["same_runtime"] = same_runtime_graphs(Path(prep["xml"]), xml, size, imgsz, tmp, runs, args.rounds)
    return {"openvino": out, "openvino_end_to_end_ratio": max(ratios) if ratios else None}


def _ov_version() -> str:
    import openvino

    return openvino.__version__


def same_runtime_graphs(
    theirs_xml: Path, ours_xml: Path, size: str, imgsz: int, tmp: Path, runs: int, rounds: int
) -> dict:
    """Model-only time of the graphs alone in one runtime (ours), alternating: ours, dfine-seg's IR and, where
    DETCLI_OFFICIAL_DFINE names a checkout, the official deployment graph. Tells the graph from the runtime."""
    from engine.export.openvino_export import export_openvino
    from engine.infer.openvino_core import core

    graphs = {"ours": ours_xml, "dfine-seg": theirs_xml}
    where = os.environ.get("DETCLI_OFFICIAL_DFINE")
    official = "not measured (set DETCLI_OFFICIAL_DFINE to a checkout of the official D-FINE)"
    if where:
        onnx_path = tmp / f"official-{size}.onnx"
        # the official config system keeps global state: one size per fresh process
        r = subprocess.run(
            [os.environ["DFINE_SEG_PY"], "-c", OFFICIAL_EXPORT, where, size, str(onnx_path), str(imgsz)],
            capture_output=True,
            text=True,
        )
        if r.returncode == 0:
            graphs["official"] = export_openvino(onnx_path, tmp / f"official-{size}.xml", {})
            official = "measured"
        else:
            official = "official export failed: " + (r.stderr.strip().splitlines() or [str(r.returncode)])[-1]
    x = np.random.default_rng(0).random((1, 3, imgsz, imgsz), np.float32)
    compiled, feeds = {}, {}
    for name, path in graphs.items():
        model = core().read_model(str(path))
        if len(model.inputs) > 1 and model.input("images").get_partial_shape()[0].is_dynamic:
            # ours has a free batch axis: run it at batch 1, as our OpenVinoBackend does (a free axis costs ~10%)
            model.reshape({"images": [1, 3, imgsz, imgsz], "orig_target_sizes": [1, 2]})
        compiled[name] = core().compile_model(
            model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        )
        if len(model.inputs) == 1:  # a raw head (dfine-seg): the image only
            feeds[name] = {model.inputs[0].get_any_name(): x}
        else:
            feeds[name] = {"images": x, "orig_target_sizes": np.array([[imgsz, imgsz]], np.int64)}
    requests = {n: c.create_infer_request() for n, c in compiled.items()}
    times: dict[str, list[float]] = {n: [] for n in graphs}
    for n, req in requests.items():
        req.infer(feeds[n])
    for _ in range(rounds * runs):
        for n, req in requests.items():
            t = time.perf_counter()
            req.infer(feeds[n])
            times[n].append((time.perf_counter() - t) * 1000)
    out: dict = {"runtime": f"openvino {_ov_version()} (ours), f32", "official": official}
    out.update({f"{n}_ms": statistics.median(v) for n, v in times.items()})
    print(f"openvino dfine-{size} graphs in one runtime: {out}")
    return out


# -------------------------------------------------------------------------------------------------- eval


def bench_eval(peer: PeerWorker, args, tmp: Path) -> dict:
    data = eval_data(args.eval_images)
    path = tmp / "eval.json"
    path.write_text(json.dumps(data))
    task = {"task": "eval", "data": str(path)}
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(our_eval(data))
        theirs.append(peer.ask(task))
    ok = [t for t in theirs if "ms" in t]
    row = {
        "images": args.eval_images,
        "ours_ms": statistics.median(o["ms"] for o in ours),
        "theirs_ms": statistics.median(t["ms"] for t in ok) if ok else None,
        "ours_map50": ours[0]["map50"],
        "ours_f1": ours[0]["f1"],
        "theirs_map50": ok[0].get("map50") if ok else None,
        "theirs_f1": ok[0].get("f1") if ok else None,
        "errors": sorted({t["error"] for t in theirs if "error" in t}),
    }
    print(f"eval {args.eval_images} images: {row}")
    return {"eval": row, "eval_ratio": _ratio([o["ms"] for o in ours], [t["ms"] for t in ok])}


def _load() -> list[float] | None:
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def main() -> dict | None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5, help="ours/theirs pairs per measurement")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}")
    ap.add_argument("--sizes", default="n,s", help="train step: model sizes")
    ap.add_argument("--batch", type=int, default=4, help="train step: batch")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument(
        "--loader-samples", type=int, default=136, help="loader: samples an epoch (34 images x 4)"
    )
    ap.add_argument("--loader-batch", type=int, default=8)
    ap.add_argument("--loader-workers", default="0,2", help="loader: worker counts, each measured")
    ap.add_argument("--loader-data", help="loader: a folder with images/, annotations/, labels_yolo/")
    ap.add_argument("--ov-size", default="n", help="openvino: model size")
    ap.add_argument("--ov-runs", type=int, default=10, help="openvino: model-only runs a round")
    ap.add_argument("--ov-images", help="openvino: a folder of JPEGs instead of VisDrone + BCCD")
    ap.add_argument("--eval-images", type=int, default=500)
    args = ap.parse_args()
    only = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(only) - set(PARTS))
    if unknown:
        ap.error(f"--only: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    python = os.environ.get("DFINE_SEG_PY")
    if not python:
        print("peer_dfine_seg: skipped (set DFINE_SEG_PY to a python with dfine-seg: `just peer-venv`)")
        return None
    torch.set_num_threads(max(1, (os.cpu_count() or 2)))
    sd = shared_dir()
    peer = PeerWorker(python, os.environ.get("DFINE_SEG_WORKER") or str(WORKER))
    try:
        hello = peer.ask({"task": "hello"})
        result: dict = {
            "peer": hello,
            "torch": torch.__version__,
            "rounds": args.rounds,
            "parts": only,
            "load_avg_start": _load(),
        }
        with tempfile.TemporaryDirectory() as tmp:
            if "train_step" in only:
                result.update(bench_train_step(peer, args))
            if "loader" in only:
                result.update(bench_loader(peer, args, sd, Path(tmp)))
            if "openvino" in only:
                result.update(bench_openvino(peer, args, sd, Path(tmp)))
            if "eval" in only:
                result.update(bench_eval(peer, args, Path(tmp)))
        result["load_avg_end"] = _load()
        # a part not run is null, never a guess
        for key in ("train_step_ratio", "loader_ratio", "openvino_end_to_end_ratio", "eval_ratio"):
            result.setdefault(key, None)
    finally:
        peer.close()
    save("peer_dfine_seg", merge_subset(result, only))
    return result


def merge_subset(result: dict, only: list[str]) -> dict:
    """A run of some parts (--only) updates those parts in the existing result file and keeps the others, each
    part stamped with the load average it was measured at, so a partial re-run never blanks the rest."""
    stamp = {"load_avg": [result["load_avg_start"], result["load_avg_end"]], "rounds": result["rounds"]}
    result["measured"] = {part: stamp for part in only}
    path = RESULTS / "peer_dfine_seg.json"
    if set(only) == set(PARTS) or not path.is_file():
        return result
    old = json.loads(path.read_text())
    keys = {
        "train_step": ("train_step", "train_step_ratio"),
        "loader": ("loader", "loader_ratio"),
        "openvino": ("openvino", "openvino_end_to_end_ratio"),
        "eval": ("eval", "eval_ratio"),
    }
    merged = {**old, "peer": result["peer"], "torch": result["torch"]}
    merged["measured"] = {**old.get("measured", {}), **result["measured"]}
    for part in only:
        for key in keys[part]:
            merged[key] = result.get(key)
    return merged


if __name__ == "__main__":
    main()
