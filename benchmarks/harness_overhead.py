"""How much of a `bench run` is not the solver: start-up, imports, model load, metrics, writing, tables.

    python benchmarks/harness_overhead.py [--repeats 3] [--out results/harness_overhead.md]

Every measurement runs in a fresh interpreter with one thread (OMP_NUM_THREADS=1), and the cases are
interleaved in a shuffled order each round so that a machine's drift moves them alike; the report gives
medians over rounds.
- start-up: `bench --help`, `import deepinv`, and the commands that only read a run (`bench status`,
  `bench table`, `bench grid` on a small run made once beforehand, `bench list`), against
  `python -c "import torch"` (the floor of any command that computes).
- two runs on the built-in model (fashion32, 32 px): tweedie + hole-fill on 64 images (instant solvers, the
  worst case for overhead) and DPS on 16 images. Each child times its phases in-process: imports, the
  run (model load, metrics and solver time inside it), tables and grids. Solver time is the sum of the
  rows' `seconds`; the non-solver share is 1 - solver time / the child's whole wall time, and the share
  beside `import torch` is 1 - (the median `import torch` + solver time) / wall: what the harness adds to the
  least a computing command pays. Each child reports its peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# commands that only read a run: (label, arguments after `bench`); RUN is the small run's folder, OUT a new folder
LIGHT = {
    "bench --help": ["--help"],
    "bench status RUN": ["status", "RUN"],
    "bench table RUN": ["table", "RUN"],
    "bench grid RUN": ["grid", "RUN", "--max-images", "4", "--out", "OUT"],
    "bench list": ["list"],
}
RUNS = {
    "tweedie+hole-fill, 64 images": (["tweedie", "hole-fill"], ["inpaint"], 64, []),
    "dps, 16 images": (["dps"], ["inpaint"], 16, []),
}


def _child(solvers: list[str], operators: list[str], num_images: int, params: list[str], out: str) -> None:
    """Run one `bench run` in this process, timing its phases; print them as JSON."""
    start = time.perf_counter()
    from ipbench.benchmark import runner
    from ipbench.benchmark.spec import build_spec
    from ipbench.results.grid import write_grids
    from ipbench.results.rows import run_rows
    from ipbench.results.table import write_tables

    imported = time.perf_counter()
    spent = {"model_load": 0.0, "metrics": 0.0}

    def timed(name: str, fn):
        def call(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t
        return call

    runner.load_model = timed("model_load", runner.load_model)
    runner.compute_metrics = timed("metrics", runner.compute_metrics)
    spec = build_spec(solvers, operators, params)
    result = runner.run(spec, out=out, batch_size=16, device="cpu", progress=False)
    ran = time.perf_counter()
    write_tables(result.out)
    write_grids(result.out)
    done = time.perf_counter()
    solver = sum(float(r["seconds"]) for r in run_rows(result.out))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"imports": imported - start, "run": ran - imported, "tables_grids": done - ran,
                      "solver": solver, **spent, "rows": result.rows_written, "peak_mib": peak_mib}))


def _wall(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    t = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - t, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="also write the Markdown report here")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    bench = [sys.executable, "-c", "from ipbench.cli import main; main()"]
    imports = {"import torch": "import torch", "import deepinv": "import deepinv"}
    cases = [*imports, *LIGHT, *RUNS]
    samples: dict[str, list] = {c: [] for c in cases}
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        small_run = str(Path(tmp) / "small-run")  # what the reading commands read: 8 images, 2 operators
        _wall(bench + ["run", "--solver", "tweedie", "--op", "inpaint", "--op", "denoise", "--num-images", "8",
                       "--device", "cpu", "--no-progress", "--out", small_run], env)
        for round_ in range(args.repeats):
            for case in rng.sample(cases, len(cases)):
                if case in imports:
                    samples[case].append(_wall([sys.executable, "-c", imports[case]], env)[0])
                elif case in LIGHT:
                    out = str(Path(tmp) / f"grid-{round_}")
                    arguments = [{"RUN": small_run, "OUT": out}.get(a, a) for a in LIGHT[case]]
                    samples[case].append(_wall(bench + arguments, env)[0])
                else:
                    solvers, operators, n, params = RUNS[case]
                    out = str(Path(tmp) / f"{len(samples[case])}-{solvers[0]}")
                    child = [sys.executable, __file__, "--child", json.dumps([solvers, operators, n, params, out])]
                    wall, stdout = _wall(child, env)
                    samples[case].append({"wall": wall, **json.loads(stdout.strip().splitlines()[-1])})
    print(render(samples, args.repeats))
    if args.out:
        from ipbench.results.report import publish

        publish(render(samples, args.repeats), args.out)


def render(samples: dict[str, list], repeats: int) -> str:
    torch_s = statistics.median(samples["import torch"])
    lines = ["# Harness overhead", "",
             f"`python benchmarks/harness_overhead.py --repeats {repeats}`: one thread, fresh interpreters, cases "
             "interleaved in shuffled order, medians over rounds. The reading commands read a tweedie run of 8 "
             "images on inpaint and denoise.", "",
             "| start-up | s | ratio to `import torch` |", "|---|---|---|"]
    for case in ("import torch", "import deepinv", *LIGHT):
        label = f'python -c "{case}"' if case.startswith("import") else case
        seconds = statistics.median(samples[case])
        lines.append(f"| `{label}` | {seconds:.2f} | {seconds / torch_s:.2f} |")
    lines += ["", "| run (fashion32, 32 px, batch 16) | wall s | solver s | not solver | not `import torch` nor solver "
              "| start-up + imports | model load | metrics | tables + grids | other (measuring, writing, loop) "
              "| peak RSS MiB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for case in RUNS:
        med = {k: statistics.median(s[k] for s in samples[case]) for k in samples[case][0]}
        wall = med["wall"]
        startup = wall - med["run"] - med["tables_grids"]  # interpreter start-up and imports
        other = med["run"] - med["solver"] - med["model_load"] - med["metrics"]
        share = lambda v: f"{v:.2f} ({100 * v / wall:.0f}%)"  # noqa: E731
        added = 1 - (torch_s + med["solver"]) / wall
        lines.append(f"| {case} | {wall:.2f} | {med['solver']:.2f} | {100 * (1 - med['solver'] / wall):.0f}% | "
                     f"{100 * added:.0f}% | {share(startup)} | {share(med['model_load'])} | {share(med['metrics'])} | "
                     f"{share(med['tables_grids'])} | {share(other)} | {med['peak_mib']:.0f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        _child(*json.loads(sys.argv[2]))
    else:
        main()
