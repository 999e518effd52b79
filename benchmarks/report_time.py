"""How long `bench report` takes on a run folder, before and after a change, against `import torch` beside it.

    python benchmarks/report_time.py [--run results/fashion32-baselines] [--baseline SOLVER] [--before DIR]
        [--repeats 5] [--note TEXT] [--out results/report_time.md]

Every measurement is one `bench report RUN` (`--out` a temporary file) in a fresh interpreter with one thread
(OMP_NUM_THREADS=1), and `python -c "import torch"` is measured the same way as the reference a machine's
speed and load move alike. `--before DIR` names a checkout of other code (`git worktree add --detach DIR
COMMIT`), timed in the same rounds with its own `ipbench` (the child runs in DIR, PYTHONPATH=DIR), so that
after / before is taken under the same load. `--baseline SOLVER` also times `bench report RUN --baseline
SOLVER` (the page against one solver instead of every pair). The cases of a round run in a shuffled order;
the report gives medians over rounds, and each ratio as the median of its per-round ratios (both sides
measured in the same round). Last, it checks that the pages of before and after say the same: their HTML
with the figures' and images' data and the time written left out, and the same number of images.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]  # the checkout this script belongs to: the code timed as "after"
TORCH = "import torch"
DATA_URI = re.compile(r'src="data:[^"]*"')
WRITTEN = re.compile(r"Written \S+ by ipbench")


def _env(code: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(code)}


def _timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall seconds of one child; its failure stops the benchmark with the child's last line."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise SystemExit(f"{shlex.join(command)} (in {cwd}) failed: {last}")
    return seconds


def _commit(code: Path) -> str:
    """The checkout's short commit, '+ changes' where its tracked files differ from it; 'unknown' off git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=code, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=code,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + changes" if dirty else "")


def page_text(html: str) -> tuple[str, int]:
    """A page without its figures' and images' data and the time it was written, and how many images it has."""
    return WRITTEN.sub("Written", DATA_URI.sub('src=""', html)), len(DATA_URI.findall(html))


def _check_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if not (Path(args.run) / "run.json").is_file():
        parser.error(f"--run {args.run}: not a run folder (no run.json there)")
    if args.before is not None and not (Path(args.before) / "ipbench" / "__init__.py").is_file():
        parser.error(f"--before {args.before}: not a checkout of ipbench (no ipbench/__init__.py there)")
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: give 1 or more")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="results/fashion32-baselines", help="the run folder to report on")
    parser.add_argument("--baseline", default=None, help="also time the report against this solver")
    parser.add_argument("--before", default=None, help="a checkout of the code to compare with (DIR)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; every case runs once per round")
    parser.add_argument("--note", default=None, help="a line on the conditions of the measurement, for the report")
    parser.add_argument("--out", default=None, help="also write the Markdown report here")
    args = parser.parse_args(argv)
    _check_args(args, parser)
    given = sys.argv[1:] if argv is None else list(argv)
    if args.before is not None:  # the report names the commit it holds, not where it was on this machine
        given = ["DIR" if a == args.before else "--before=DIR" if a == f"--before={args.before}" else a
                 for a in given]
    command = "python " + shlex.join(["benchmarks/report_time.py", *given])
    run = Path(args.run).resolve()
    codes = {"after": ROOT, **({"before": Path(args.before).resolve()} if args.before else {})}
    variants = {"": [], **({f" --baseline {args.baseline}": ["--baseline", args.baseline]} if args.baseline else {})}
    cases = [(TORCH, "")] + [(variant, name) for variant in variants for name in codes]
    samples: dict[tuple[str, str], list[float]] = {case: [] for case in cases}
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        pages = {}
        for _ in range(args.repeats):
            for case in rng.sample(cases, len(cases)):
                variant, name = case
                if variant == TORCH:
                    samples[case].append(_timed([sys.executable, "-c", TORCH], Path(tmp), _env(ROOT)))
                    continue
                out = Path(tmp) / f"{name}{variant.replace(' ', '_')}.html"
                report = [sys.executable, "-m", "ipbench", "report", str(run), "--out", str(out), *variants[variant]]
                samples[case].append(_timed(report, codes[name], _env(codes[name])))
                pages[(variant, name)] = out.read_text(encoding="utf-8")
        load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    text = render(samples, variants, codes, pages, args, command, load_before, load_after)
    sys.path.insert(0, str(ROOT))  # this checkout's ipbench, wherever the script is started from
    from ipbench.results.report import publish

    publish(text, args.out)
    return 0


def _seconds(samples: list[float]) -> str:
    return f"{statistics.median(samples):.2f} ({min(samples):.2f}-{max(samples):.2f})"


def _median_ratio(a: list[float], b: list[float]) -> float:
    """The median over rounds of a / b, both measured in the same round."""
    return statistics.median(x / y for x, y in zip(a, b))


def render(samples: dict[tuple[str, str], list[float]], variants: dict[str, list[str]], codes: dict[str, Path],
           pages: dict[tuple[str, str], str], args: argparse.Namespace, command: str,
           load_before: tuple[float, ...] | None, load_after: tuple[float, ...] | None) -> str:
    torch_s = samples[(TORCH, "")]
    commits = {name: _commit(code) for name, code in codes.items()}
    load = (f"- Load average (1 min) at the start and at the end: {load_before[0]:.2f}, {load_after[0]:.2f}, on "
            f"{os.cpu_count()} logical CPUs" if load_before and load_after else "- Load average: not available here")
    lines = ["# bench report time", "",
             f"- Command: `{command}`",
             *([f"- Note: {args.note}"] if args.note else []),
             load,
             "- Code: " + "; ".join(f"{name}: commit {commits[name]}" for name in codes)
             + ("; DIR: a checkout of the before commit (`git worktree add --detach DIR COMMIT`)" if "before" in codes
                else ""),
             f"- {args.repeats} round{'s' if args.repeats != 1 else ''}, the cases of each in shuffled order, one "
             "thread, fresh interpreters; s = "
             "median over rounds (their range in brackets); a ratio = the median of its per-round ratios (both sides "
             "measured in the same round), which a load that drifts between rounds moves less than the seconds.", "",
             "| command | code | s | / `import torch` | after / before |", "|---|---|---|---|---|",
             f"| `python -c \"import torch\"` | | {_seconds(torch_s)} | 1.00 | |"]
    for variant in variants:
        shown = f"`bench report {args.run}{variant}`"
        for name in codes:
            s = samples[(variant, name)]
            versus = (f"{_median_ratio(s, samples[(variant, 'before')]):.2f}"
                      if name == "after" and "before" in codes else "")
            lines.append(f"| {shown} | {name} | {_seconds(s)} | {_median_ratio(s, torch_s):.2f} | {versus} |")
    if "before" in codes:
        lines.append("")
        for variant in variants:
            after, before = (page_text(pages[(variant, name)]) for name in ("after", "before"))
            same = "the same" if after == before else "NOT the same"
            sizes = [len(pages[(variant, name)].encode("utf-8")) / 1e6 for name in ("after", "before")]
            lines.append(f"- `bench report {args.run}{variant}`: the pages of before and after are {same} (their HTML "
                         f"without the figures' and images' data and the time written; {after[1]} and {before[1]} "
                         f"images); they weigh {sizes[0]:.2f} and {sizes[1]:.2f} MB.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
