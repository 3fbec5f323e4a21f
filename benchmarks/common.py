"""Shared bits of the benchmark scripts: machine description, table printing, docs/benchmarks.md."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, torch {torch.__version__}, Python {platform.python_version()}"


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def report(title: str, header: list[str], rows: list[list[str]], notes: str = "", append: bool = True) -> str:
    """Print a markdown table and append it, with date, machine and command, to docs/benchmarks.md."""
    lines = [f"| {' | '.join(header)} |", f"|{'|'.join('---' for _ in header)}|"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    table = "\n".join(lines)
    command = " ".join(shlex.quote(a) for a in ["python", *sys.argv])
    text = f"\n## {title}\n\n{datetime.date.today().isoformat()}, `{command}`  \nMachine: {machine()}\n\n{table}\n" + (
        f"\n{notes}\n" if notes else ""
    )
    print(text)
    if append:
        DOC.parent.mkdir(exist_ok=True)
        if not DOC.exists():
            DOC.write_text("# Benchmarks\n\nEach section was appended by the script it names; numbers are medians.\n")
        with DOC.open("a") as f:
            f.write(text)
    return text
