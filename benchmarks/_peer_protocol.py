"""The line protocol between benchmarks/peer_dfine_seg.py and a peer worker running in the peer's own venv.

One JSON object a line on the worker's stdin (a task) and one on its stdout (the answer): the worker keeps its
models warm between tasks, so the benchmark can alternate ours / theirs task by task (A B A B) without paying a
process start on either side. Tasks: {"task": "train_step", "size": "n", "batch": 4, "imgsz": 640} answers
{"ms": float}; {"task": "eval", "data": path} answers {"ms": float, "map50": float, "f1": float};
{"task": "hello"} answers {"peer": name, "version": str}; {"task": "quit"} ends the worker.
An answer {"error": str} is a task the peer could not run: the benchmark records it instead of a number.
"""

from __future__ import annotations

import json
import subprocess


class PeerWorker:
    """A running peer worker: `ask(task)` sends one task and returns its answer."""

    def __init__(self, python: str, script: str):
        self.proc = subprocess.Popen(
            [python, script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def ask(self, task: dict) -> dict:
        """Send one task; returns the answer, or {"error": ...} when the worker died."""
        assert self.proc.stdin and self.proc.stdout
        try:
            self.proc.stdin.write(json.dumps(task) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            return {"error": f"peer worker exited (rc={self.proc.poll()}) on {task['task']}"}
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            # a worker whose libraries print on stdout: report it instead of stopping the whole benchmark
            return {"error": f"peer worker wrote a non-answer line on {task['task']}: {line[:200]!r}"}

    def close(self) -> None:
        """Ask the worker to quit, then wait for it."""
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin
                self.proc.stdin.write(json.dumps({"task": "quit"}) + "\n")
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
            self.proc.wait(timeout=60)
