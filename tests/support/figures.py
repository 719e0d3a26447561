"""Figures of the reliability campaigns (docs/reliability.md).

Each campaign test calls `figure(name, **values)`: the line is printed (visible with `-s`)
and, when DONGLED_FIGURES names a file, appended to it as one JSON object per line, so
`DONGLED_FIGURES=/tmp/fig.jsonl pytest tests/test_rel_*.py` collects every figure of a run.
"""

from __future__ import annotations

import json
import os
import time


def figure(name: str, **values: object) -> None:
    record = {"figure": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **values}
    line = json.dumps(record, sort_keys=True, default=str)
    print(f"FIGURE {line}")
    path = os.environ.get("DONGLED_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
