"""One OpenVINO `Core` per process, and a guard that lends it to libraries that would make their own.

Why this exists: each `ov.Core` creates its own CPU plugin engine on first compile, and that engine swaps the
calling thread's signal alternate stack (`sigaltstack`) for one it maps itself. When the engine is destroyed it
puts back the stack it found and unmaps its own. Two Cores destroyed in the order they were created therefore
leave the thread pointing at unmapped memory, and the next signal handled on the alternate stack (CPython
installs its handlers with SA_ONSTACK; torch's DataLoader handles SIGCHLD, which arrives whenever any child
process exits) kills the process with SIGSEGV. One long-lived Core per process never gets into that state.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

_lock = threading.Lock()
_core: Any = None


def core() -> Any:
    """The process-wide `openvino.Core` (created on first use, kept until the process exits)."""
    global _core
    with _lock:
        if _core is None:
            import openvino as ov

            _core = ov.Core()
        return _core


@contextlib.contextmanager
def shared_core() -> Iterator[Any]:
    """Within the block, `openvino.Core()` returns the process-wide Core instead of a new one.

    For third-party code that creates Cores of its own (NNCF builds one per calibration engine and per CPU
    query): their Cores would otherwise be destroyed in whatever order the garbage collector picks.
    """
    import openvino as ov

    shared = core()
    original = ov.Core
    ov.Core = lambda *args, **kwargs: shared  # type: ignore[misc, assignment]
    try:
        yield shared
    finally:
        ov.Core = original  # type: ignore[misc]
