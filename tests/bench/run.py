"""`make bench`: measure the system against its baselines in one run and write docs/benchmarks.md.

Every figure is measured side by side with its baseline on the same machine in the same run (the machine is
noisy: ratios and medians, not absolute numbers, are what to compare between runs).

    python -m tests.bench [--only approvals,reads,reports,backup] [--approvals 500] [--entries 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from core.settings import PROJECT_ROOT
from tests.bench import approvals
from tests.bench.stack import bench_database_url, running_stack, temporal_server

Row = tuple[str, str, str, str, str]  # what, figure, baseline, ratio, goal


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{platform.node()}: {os.cpu_count()} cores ({cpu}){memory}, {platform.system()} {platform.release()}"


def bench_approvals(args: argparse.Namespace, work: Path, rows: list[Row], notes: list[str]) -> None:
    with (
        temporal_server(work) as address,
        running_stack(bench_database_url(), address, work, {"APPROVAL_REMINDER_HOURS": "48"}) as stack,
    ):
        floor = approvals.temporal_floor(address, args.approvals, args.concurrency)
        ours = asyncio.run(approvals.approval_throughput(stack, args.approvals, args.concurrency))
        latency = asyncio.run(approvals.approve_latency(stack, args.latency_samples))
    ratio = ours["per_second"] / floor["per_second"]
    rows.append(
        (
            f"Approval throughput ({args.approvals} expenses: create, submit, approve over HTTP; "
            f"{args.concurrency} concurrent clients)",
            f"{ours['per_second']}/s ({ours['seconds']} s)",
            f"floor {floor['per_second']}/s ({floor['seconds']} s)",
            f"{ratio:.2f}",
            ">= 0.5 " + ("met" if ratio >= 0.5 else "MISSED"),
        )
    )
    p50_ratio = latency["p50_ms"] / floor["update_p50_ms"]
    rows.append(
        (
            f"Approve latency over HTTP, serial ({latency['approvals']} approvals), p50 / p95",
            f"{latency['p50_ms']} / {latency['p95_ms']} ms",
            f"floor Update p50 / p95 {floor['update_p50_ms']} / {floor['update_p95_ms']} ms",
            f"{p50_ratio:.2f}",
            "p50 <= 2x floor " + ("met" if p50_ratio <= 2 else "MISSED"),
        )
    )


SECTIONS: dict[str, Callable[[argparse.Namespace, Path, list[Row], list[str]], None]] = {
    "approvals": bench_approvals,
}


def write_report(rows: list[Row], notes: list[str], command: str, started: datetime) -> Path:
    path = PROJECT_ROOT / "docs" / "benchmarks.md"
    path.parent.mkdir(exist_ok=True)
    lines = [
        "# Benchmarks",
        "",
        f"- Command: `{command}`",
        f"- Machine: {_machine()}",
        f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Commit: {_commit()}",
        "",
        "Each figure is measured in the same run as its baseline, against the same servers.",
        "",
        "| What | Figure | Baseline | Ratio | Goal |",
        "| --- | --- | --- | --- | --- |",
        *[f"| {' | '.join(row)} |" for row in rows],
        "",
    ]
    if notes:
        lines += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    history = PROJECT_ROOT / "docs" / "benchmarks-history.md"
    previous = path.read_text() if path.exists() else ""
    path.write_text("\n".join(lines))
    if previous:
        with history.open("a") as handle:
            handle.write("\n\n---\n\n" + previous)
    return path


def _commit() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=PROJECT_ROOT
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--approvals", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency-samples", type=int, default=100)
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="finance-bench-") as folder:
        for name in args.only.split(","):
            print(f"[bench] {name} ...", flush=True)
            SECTIONS[name](args, Path(folder), rows, notes)
            for row in rows:
                print("  " + " | ".join(row), flush=True)
    command = "make bench" + (f" ARGS='{' '.join(argv)}'" if argv else "")
    path = write_report(rows, notes, command, started)
    print(f"[bench] written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
