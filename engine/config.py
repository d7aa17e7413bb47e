"""One validated configuration for a whole run: data, augs, model, train, eval, export, bench.

Loading order (later wins): schema defaults <- preset YAML <- `--config FILE` <- `k=v` overrides.
Every error names the bad key, the value, what was expected and, for typos, the closest valid key.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MODEL_NAMES = ("dfine-n", "dfine-s", "dfine-m", "dfine-l", "dfine-x")


class ConfigError(ValueError):
    """A configuration problem a user can fix; the message says which key and how."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _pair(v: Any) -> Any:
    """Accept `640` or `[480, 640]` for an (h, w) pair."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return (int(v), int(v))
    return v


class SynthConfig(_Section):
    """The bundled synthetic dataset that `detcli data synth` makes (used by the demo preset)."""

    images: int = Field(240, ge=8, description="images to generate (train + val + test)")
    size: int = Field(320, ge=64, description="square image side in pixels")
    seed: int = 0


class DataConfig(_Section):
    """Where the dataset lives and how images are fed to the model."""

    root: Path | None = Field(None, description="dataset root (YOLO layout: images/, labels/, classes.txt)")
    format: Literal["yolo", "coco", "visdrone", "voc"] = "yolo"
    train_split: str = Field("train.csv", description="split CSV (relative image paths) or folder under root")
    val_split: str = "val.csv"
    test_split: str = "test.csv"
    classes: list[str] | None = Field(None, description="class names; None reads classes.txt / data.yaml")
    imgsz: tuple[int, int] = Field((640, 640), description="model input (height, width)")
    keep_ratio: bool = Field(False, description="letterbox (True) or plain resize (False)")
    synth: SynthConfig | None = Field(
        None, description="generate the synthetic demo dataset at root if missing"
    )

    _pair_imgsz = field_validator("imgsz", mode="before")(_pair)

    @field_validator("imgsz")
    @classmethod
    def _check_imgsz(cls, v: tuple[int, int]) -> tuple[int, int]:
        if any(s < 32 or s % 32 for s in v):
            raise ValueError(f"each side must be a multiple of 32 and >= 32, got {list(v)}")
        return v


class MosaicConfig(_Section):
    """4 images on a 2x2 canvas, then a random affine (scale/translate/rotate/shear)."""

    prob: float = Field(0.8, ge=0, le=1)
    scale: tuple[float, float] = (0.5, 1.5)
    degrees: float = Field(0.0, ge=0, le=180)
    translate: float = Field(0.2, ge=0, le=0.5)
    shear: float = Field(2.0, ge=0, le=45)
    pool: int = Field(
        64,
        ge=0,
        description="partners come from the last N images the loader worker decoded (one decode per mosaic);"
        " 0 draws them from the whole dataset (four decodes per mosaic)",
    )


class MixupConfig(_Section):
    prob: float = Field(0.0, ge=0, le=1)
    alpha: float = Field(0.5, ge=0, le=1, description="blend weight range is [alpha, 1 - alpha] around 0.5")


class CutoutConfig(_Section):
    prob: float = Field(0.0, ge=0, le=1)
    holes: tuple[int, int] = (1, 4)
    size: tuple[float, float] = Field((0.05, 0.2), description="hole side as a fraction of the image side")


class AugsConfig(_Section):
    """Training-time augmentation. Probabilities are per image; 0 disables."""

    mosaic: MosaicConfig = MosaicConfig()
    mixup: MixupConfig = MixupConfig()
    cutout: CutoutConfig = CutoutConfig()
    hflip: float = Field(0.5, ge=0, le=1)
    vflip: float = Field(0.0, ge=0, le=1)
    rot90: float = Field(0.0, ge=0, le=1)
    brightness_contrast: float = Field(0.2, ge=0, le=1)
    gamma: float = Field(0.05, ge=0, le=1)
    blur: float = Field(0.02, ge=0, le=1)
    noise: float = Field(0.02, ge=0, le=1)
    to_gray: float = Field(0.01, ge=0, le=1)
    close_mosaic: int = Field(5, ge=0, description="last N epochs without mosaic/mixup")
    ignore_background_epochs: int = Field(
        0, ge=0, description="skip images without objects for the first N epochs"
    )
    min_box_px: float = Field(2.0, ge=0, description="boxes smaller than this after augmentation are dropped")


class ModelConfig(_Section):
    name: Literal["dfine-n", "dfine-s", "dfine-m", "dfine-l", "dfine-x"] = "dfine-s"
    num_queries: int | None = Field(None, ge=1, description="None keeps the official 300")
    num_decoder_layers: int | None = Field(None, ge=1, description="None keeps the size's official depth")
    num_denoising: int | None = Field(
        None, ge=0, description="contrastive denoising queries; None = official 100"
    )
    pretrained: str | None = Field(
        None, description="checkpoint to start from: a name in `detcli weights list` or a .pt/.pth path"
    )
    freeze_at: int | None = Field(
        None, ge=-1, description="HGNetv2: -1 freezes nothing, >=0 the stem (+ stages 0..N); None = official"
    )
    freeze_stem_only: bool | None = Field(
        None, description="with freeze_at >= 0: the stem only; None = official"
    )
    freeze_norm: bool | None = Field(
        None, description="HGNetv2 BatchNorm as fixed statistics (official: L/X true); None = official"
    )
    backbone_pretrained: bool | str = Field(
        False,
        description="true = the size's ImageNet HGNetv2 (the official recipe), false = random, or a NAME/PATH",
    )


class TrainConfig(_Section):
    epochs: int = Field(50, ge=1)
    batch: int = Field(8, ge=1)
    accumulate: int = Field(1, ge=1, description="optimizer step every N batches")
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(2e-4, gt=0)
    backbone_lr: float | None = Field(1e-4, gt=0, description="None = same as lr")
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum / AdamW beta1")
    scheduler: Literal["flat-cosine", "cosine", "one-cycle", "step", "multistep", "constant"] = "flat-cosine"
    warmup_steps: int = Field(500, ge=0, description="linear warm-up in optimizer steps")
    flat_epochs: float = Field(0.5, ge=0, le=1, description="flat-cosine: fraction of training at full LR")
    min_lr_ratio: float = Field(0.05, ge=0, le=1)
    milestones: list[int] = Field(default_factory=list, description="step/multistep: epochs where LR drops")
    lr_gamma: float = Field(0.1, gt=0, le=1)
    ema: bool = True
    ema_decay: float = Field(0.9999, gt=0, lt=1)
    ema_warmups: int = Field(1000, ge=0)
    amp: Literal["auto", "off", "fp16", "bf16"] = Field("auto", description="auto = fp16 on CUDA, off on CPU")
    clip_grad: float | None = Field(0.1, gt=0, description="max grad norm; None disables")
    workers: int = Field(2, ge=0)
    seed: int = 0
    devices: str = Field("auto", description="'auto', 'cpu', '0', '0,1' (several launch torchrun)")
    sync_bn: bool = False
    patience: int = Field(0, ge=0, description="early stop after N epochs without improvement; 0 = off")
    time_hours: float | None = Field(None, gt=0, description="stop after this wall time")
    log_every: int = Field(10, ge=1, description="steps between run-history rows")
    max_bad_steps: int = Field(20, ge=1, description="stop after N non-finite losses in a row")


class EvalConfig(_Section):
    conf: float = Field(0.5, ge=0, le=1, description="production confidence threshold")
    iou: float = Field(0.5, gt=0, le=1)
    max_det: int = Field(300, ge=1)
    best_metric: str = Field("(map50 + f1) / 2", description="formula over eval metrics for best.pt")
    split: Literal["val", "test"] = "val"
    every: int = Field(1, ge=1, description="evaluate every N epochs")


class ExportConfig(_Section):
    format: Literal["onnx", "openvino", "tensorrt"] = "onnx"
    half: bool = False
    int8: bool = False
    dynamic: bool = False
    imgsz: tuple[int, int] | None = None
    simplify: bool = False
    opset: int = Field(17, ge=17)

    _pair_imgsz = field_validator("imgsz", mode="before")(_pair)


class BenchConfig(_Section):
    device: str = Field("auto", description="device profile in presets/devices/")
    runs: int = Field(200, ge=1)
    warmup: int = Field(20, ge=0)
    images: Path | None = None


class RunConfig(_Section):
    """Everything a run needs. `preset` records where the values came from."""

    preset: str | None = None
    data: DataConfig = DataConfig()
    augs: AugsConfig = AugsConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    export: ExportConfig = ExportConfig()
    bench: BenchConfig = BenchConfig()

    def to_yaml(self) -> str:
        """The resolved config as YAML; `load_config(config_file=...)` reads it back to an equal object."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


# ---------------------------------------------------------------- key introspection and friendly errors


def valid_keys(model: type[BaseModel] = RunConfig, prefix: str = "") -> list[str]:
    """Every dotted key the schema accepts, e.g. 'train.epochs', 'augs.mosaic.prob'."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        sub = _section_type(field.annotation)
        if sub is not None:
            keys.extend(valid_keys(sub, dotted + "."))
    return keys


def _section_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _suggest(key: str) -> str:
    keys = valid_keys()
    leaf = key.rsplit(".", 1)[-1]
    best = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
    if not best:
        # a right leaf in the wrong section: `epochs=5` -> train.epochs
        best = [k for k in keys if k.rsplit(".", 1)[-1] == leaf][:1]
    if not best:
        best = difflib.get_close_matches(leaf, keys, n=1, cutoff=0.5)
    return f" (did you mean {best[0]}?)" if best else ""


def _describe_expected(key: str) -> str:
    model: type[BaseModel] = RunConfig
    parts = key.split(".")
    for i, p in enumerate(parts):
        field = model.model_fields.get(p)
        if field is None:
            return "a valid key"
        if i == len(parts) - 1:
            ann = field.annotation
            if getattr(ann, "__origin__", None) is Literal:
                return "one of " + ", ".join(map(str, ann.__args__))
            text = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
            return text.replace("pathlib.", "")
        sub = _section_type(field.annotation)
        if sub is None:
            return "a valid key"
        model = sub
    return "a valid key"


def _format_validation(err: ValidationError, source: str) -> ConfigError:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"] if not isinstance(p, int))
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{loc}'{_suggest(loc)}")
        else:
            value = e.get("input")
            lines.append(
                f"{source}: bad value for '{loc}': {value!r} ({e['msg']}; expected {_describe_expected(loc)})"
            )
    return ConfigError("\n".join(lines))


# ---------------------------------------------------------------- presets


def presets_dir() -> Path:
    """The folder holding preset YAMLs ($DETCLI_PRESETS_DIR, else the repository's presets/)."""
    env = os.environ.get("DETCLI_PRESETS_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "presets"


def list_presets() -> list[tuple[str, str]]:
    """(name, one-line purpose) for every preset; the purpose is the YAML's first comment line."""
    out = []
    for path in sorted(presets_dir().glob("*.yaml")):
        first = path.read_text().splitlines()[0] if path.stat().st_size else ""
        out.append((path.stem, first.lstrip("# ").strip()))
    return out


def preset_path(name: str) -> Path:
    """Resolve a preset name (or a path to a YAML file) to its file, with a helpful error."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    cand = presets_dir() / f"{name}.yaml"
    if cand.is_file():
        return cand
    names = [n for n, _ in list_presets()]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ConfigError(f"unknown preset '{name}'{hint}; available: {', '.join(names)}")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[str, Any]:
    """Parse `a.b.c=value`; the value is YAML (`[car,bus]`, `true`, `0.5`, `null`)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value (e.g. train.epochs=50)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _check_key(key: str, source: str) -> None:
    if key not in set(valid_keys()):
        raise ConfigError(f"{source}: unknown key '{key}'{_suggest(key)}")


def _set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = tree
    for p in parts[:-1]:
        child = node.get(p)
        if not isinstance(child, dict):
            child = {}
            node[p] = child
        node = child
    node[parts[-1]] = value


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def load_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> RunConfig:
    """Resolve defaults <- preset <- config file <- overrides into one validated RunConfig."""
    tree: dict[str, Any] = {}
    sources: list[tuple[str, dict[str, Any]]] = []
    if preset:
        path = preset_path(preset)
        sources.append((str(path), _read_yaml(path)))
    if config_file:
        sources.append((str(config_file), _read_yaml(Path(config_file))))
    for source, data in sources:
        try:
            RunConfig.model_validate(data)
        except ValidationError as e:
            raise _format_validation(e, source) from None
        tree = _deep_merge(tree, data)
    if preset and "preset" not in tree:
        tree["preset"] = Path(preset).stem
    for text in overrides:
        key, value = parse_override(text)
        _check_key(key, "override")
        _set_dotted(tree, key, value)
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as e:
        raise _format_validation(e, "override" if overrides else "config") from None


def config_diff(a: RunConfig | dict, b: RunConfig | dict) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ between two configs: {key: (a_value, b_value)}."""

    def flat(obj: Any, prefix: str = "") -> dict[str, Any]:
        d = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj
        out: dict[str, Any] = {}
        for k, v in (d or {}).items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    fa, fb = flat(a), flat(b)
    return {k: (fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}
