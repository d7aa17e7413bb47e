"""Entry point of one torchrun worker: `python -m engine.runs.worker --runs-dir DIR RUN` joins RUN's training."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Train this rank's share of RUN; exit 1 with the message when training stops for a user-facing reason."""
    from engine.api import train
    from engine.errors import DetcliError

    p = argparse.ArgumentParser(prog="engine.runs.worker")
    p.add_argument("--runs-dir", required=True)
    p.add_argument("run")
    args = p.parse_args(argv)
    try:
        train(runs_dir=args.runs_dir, attach=args.run)
    except DetcliError as e:
        print(f"Error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
