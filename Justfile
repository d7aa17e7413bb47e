# detcli tasks. Prerequisite: Python 3.10+ (3.11 tested) and `just` (`pip install rust-just`).

set shell := ["bash", "-euo", "pipefail", "-c"]

venv := ".venv"
py := venv / "bin/python"
detcli := venv / "bin/detcli"

# list the tasks
default:
    @just --list

# create .venv and install detcli (+ dev tools, NNCF for INT8); CPU torch unless an NVIDIA GPU is present. Fast when done.
setup:
    #!/usr/bin/env bash
    set -euo pipefail
    python=$(command -v python3.11 || command -v python3)
    [ -x {{ py }} ] || "$python" -m venv {{ venv }}
    stamp={{ venv }}/.detcli-setup
    want=$(cat pyproject.toml Justfile setup.py engine/data/*.c | sha256sum | cut -c1-16)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && {{ py }} -c "import engine, detcli, torch" 2>/dev/null; then
        echo "setup: .venv is up to date"; exit 0
    fi
    if ! {{ py }} -c "import torch" 2>/dev/null; then
        if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
            {{ py }} -m pip install torch            # CUDA build
        else
            {{ py }} -m pip install torch==2.13.0    # CPU build
        fi
    fi
    {{ py }} -m pip install -e ".[dev,int8]"
    # the data check's C kernels build where a compiler is found; without them it runs the same checks, slower
    {{ py }} -c "import engine.data._area_dhash, engine.data._dir_stats" 2>/dev/null \
        || echo "setup: no C compiler found: the data check runs without its native kernels (same findings, slower)"
    # tmux drives the real-terminal dashboard test; install it where we can (root on Debian/Ubuntu)
    if ! command -v tmux >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get install -y -qq tmux >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq tmux >/dev/null 2>&1)) \
            || echo "setup: tmux not installed (the tmux dashboard test will be skipped)"
    fi
    # sshd plays the target device in the `bench --host` tests (a throw-away server on 127.0.0.1)
    if [ ! -x /usr/sbin/sshd ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get install -y -qq openssh-server openssh-client >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq openssh-server openssh-client >/dev/null 2>&1)) \
            || echo "setup: openssh-server not installed (the remote bench tests will be skipped)"
    fi
    echo "$want" > "$stamp"
    echo "setup: done ({{ venv }})"

# run the whole test suite (slow end-to-end tests included)
test *args: setup
    {{ py }} -m pytest -q -p no:cacheprovider {{ args }}

# fast tests only
test-fast *args: setup
    {{ py }} -m pytest -q -m "not slow" {{ args }}

# ruff lint + format check
lint: setup
    {{ venv }}/bin/ruff check .
    {{ venv }}/bin/ruff format --check .

# synthetic data -> check -> train (demo preset) -> eval -> export -> bench; prints where everything went
demo runs="runs": setup
    #!/usr/bin/env bash
    set -euo pipefail
    export DETCLI_RUNS_DIR="{{ runs }}"
    d={{ detcli }}
    $d data synth datasets/demo --images 240 --size 256 --seed 0
    $d data check datasets/demo
    $d train --preset demo
    run=$($d runs list --json | {{ py }} -c "import json,sys; print(json.load(sys.stdin)[0]['name'])")
    $d eval "$run" --save-vis 8
    $d export "$run" --format onnx
    $d export "$run" --format openvino
    $d bench "$run" --device cpu --compare --runs 50 --warmup 5
    $d runs show "$run"
    echo "demo: run '$run' -> {{ runs }}/$run (weights, plots, exports); watch or replay it with: $d dashboard $run"

# performance benchmarks (results in benchmarks/results/)
bench: setup
    #!/usr/bin/env bash
    set -euo pipefail
    # D-FINE-seg (peer_dfine_seg.py) is measured whenever `just peer-venv` made its venv (it skips in one line otherwise)
    peers=../detcli-peers
    if [ -z "${DFINE_SEG_PY:-}" ] && [ -x "$peers/venv/bin/python" ] && "$peers/venv/bin/python" -c "import dfine_seg" 2>/dev/null; then
        export DFINE_SEG_PY="$peers/venv/bin/python"
    fi
    for b in benchmarks/[a-z]*.py; do
        [ "$b" = benchmarks/gpu_check.py ] && continue
        echo "== $b"
        if [ "$b" = benchmarks/peer_dfine_seg.py ] && [ -z "${DETCLI_OFFICIAL_DFINE:-}" ] && [ -d "$peers/D-FINE" ]; then
            DETCLI_OFFICIAL_DFINE="$peers/D-FINE" {{ py }} "$b"
        else
            {{ py }} "$b"
        fi
    done

# D-FINE-seg side by side alone, or some of its parts: just bench-dfine-seg --only loader,openvino --rounds 9
bench-dfine-seg *args: setup
    #!/usr/bin/env bash
    set -euo pipefail
    peers=../detcli-peers
    export DFINE_SEG_PY="${DFINE_SEG_PY:-$peers/venv/bin/python}"
    [ -z "${DETCLI_OFFICIAL_DFINE:-}" ] && [ -d "$peers/D-FINE" ] && export DETCLI_OFFICIAL_DFINE="$peers/D-FINE"
    [ -x "$DFINE_SEG_PY" ] || { echo "bench-dfine-seg: skipped (no $DFINE_SEG_PY: run just peer-venv)"; exit 0; }
    {{ py }} benchmarks/peer_dfine_seg.py {{ args }}

# `detcli data check` at scale alone (it is part of `just bench` too): synthetic 64 px sets of the given sizes
bench-data-check +sizes="2000 8000 32000": setup
    {{ py }} benchmarks/data_check_scale.py --sizes {{ sizes }}

# Never a dependency of detcli; the official D-FINE needs torchvision, which does not install beside the CPU torch.
# After it: DETCLI_OFFICIAL_DFINE=<dir>/D-FINE DETCLI_PEER_PY=<dir>/venv/bin/python ULTRALYTICS_PY=<dir>/venv/bin/python \
#   DFINE_SEG_PY=<dir>/venv/bin/python just bench
# a throwaway venv + official D-FINE checkout outside the repo, for the peers `just bench` measures against
peer-venv dir="../detcli-peers":
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p "{{ dir }}"
    [ -x "{{ dir }}/venv/bin/python" ] || python3 -m venv "{{ dir }}/venv"
    # torch + torchvision as a matching pair (2.14.1 / 0.29.1 are the newest pair on our CPU machines' disk)
    "{{ dir }}/venv/bin/pip" install -q torch==2.14.1 torchvision==0.29.1 scipy pyyaml faster-coco-eval \
        tensorboard transformers calflops loguru onnx ultralytics
    # D-FINE-seg (benchmarks/peer_dfine_seg.py) with the export packages its `all` extra names for ONNX/OpenVINO
    # (not the extra itself: it pulls TensorRT/CUDA, gradio and coremltools, none of which a CPU benchmark uses)
    "{{ dir }}/venv/bin/pip" install -q dfine-seg==0.6.2 onnx onnxconverter-common onnxruntime onnxscript onnxsim \
        "openvino>=2025.2,<2026"
    [ -d "{{ dir }}/D-FINE" ] || git clone -q https://github.com/Peterande/D-FINE "{{ dir }}/D-FINE" \
        || echo "peer-venv: could not clone D-FINE: put a checkout at {{ dir }}/D-FINE"
    echo "peer-venv: DETCLI_OFFICIAL_DFINE={{ dir }}/D-FINE DETCLI_PEER_PY={{ dir }}/venv/bin/python ULTRALYTICS_PY={{ dir }}/venv/bin/python DFINE_SEG_PY={{ dir }}/venv/bin/python just bench"

# GPU self-test: AMP fp16/bf16 training, torchrun + kill -9 + --resume, inference agreement and bench per backend
# -> benchmarks/results/gpu_check.json (prints "no CUDA device: skipped" and exits 0 where no CUDA GPU is visible)
gpu-check *args:
    #!/usr/bin/env bash
    set -euo pipefail
    # .venv where `just setup` made one; else the box's own python3 (a CUDA PyTorch image, see gpu-box)
    python=$([ -x {{ py }} ] && echo {{ py }} || echo python3)
    exec "$python" benchmarks/gpu_check.py {{ args }}

# Wheels a CUDA PyTorch image without network lacks for gpu-check (cp312 manylinux, no deps, the versions .venv
# runs) into the ignored .whl/; carry the checkout there and run `bash benchmarks/gpu_box.sh` (README: "On your GPU box").
gpu-wheels dir=".whl" python="3.12":
    #!/usr/bin/env bash
    set -euo pipefail
    # what the gpu-check path imports beyond such an image (torch, numpy, onnx, onnxruntime, opencv, scipy, click,
    # rich, pyyaml, pillow, tqdm, ...): found by running the CPU dry mode with every other distribution hidden
    names="albumentations albucore stringzilla simsimd pydantic pydantic-core annotated-types typing-inspection
        simplejpeg faster-coco-eval sqlite-utils sqlite-fts4"
    pins=$({{ py }} -c 'import sys, importlib.metadata as m; print(" ".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' $names)
    rm -rf "{{ dir }}" && mkdir -p "{{ dir }}"
    {{ py }} -m pip download -q --no-deps --only-binary=:all: --python-version {{ python }} --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "{{ dir }}" $pins
    echo "gpu-wheels: $(ls "{{ dir }}" | wc -l) wheels, $(du -sh "{{ dir }}" | cut -f1) in {{ dir }} (the device carry limit is 64 MiB)"
