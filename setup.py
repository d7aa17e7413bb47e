"""Native kernels of the data check, built where a C compiler is found (else detcli runs the same checks in
Python, slower): everything else about the package is in pyproject.toml."""

import os

from setuptools import Extension, setup

posix = os.name == "posix"
# -ffp-contract=off: the area thumbnail must round as OpenCV does, never fused into one multiply-add
flags = ["-O3", "-ffp-contract=off"] if posix else []
extensions = [
    Extension(
        "engine.data._area_dhash",
        ["engine/data/_area_dhash.c"],
        extra_compile_args=flags,
        libraries=["m"] if posix else [],  # lrintf
        optional=True,
    )
]
if posix:  # openat / fdopendir / fstatat
    extensions.append(
        Extension(
            "engine.data._dir_stats", ["engine/data/_dir_stats.c"], extra_compile_args=flags, optional=True
        )
    )

setup(ext_modules=extensions)
