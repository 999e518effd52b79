"""LPIPS set-up before and after building only the trunk layers lpips uses: time and peak memory.

    python benchmarks/lpips_setup.py [--repeats 5] [--out results/lpips_setup.md]

"old" is the previous ipbench set-up, kept here as `old_lpips_network`: `lpips.LPIPS(pnet_rand=True)`, for
which torchvision builds and randomly initialises the whole AlexNet / VGG16 (classifier included), then the
trunk is overwritten. "new" is ipbench.results.lpips_networks.lpips_network (only the five slices, built on
the meta device, the loaded weights assigned). Every measurement is a fresh interpreter with one thread, the
cases interleaved in a shuffled order each round; the report gives medians over rounds and new / old ratios.

- set-up: the child imports ipbench's LPIPS module (torch, torchvision, lpips), then times one
  lpips_network(net, cpu) call; peak RSS is the child's getrusage maxrss at the end, and the increase over
  its maxrss just before the call. VGG reads a features-only VGG16 file with random weights written to a
  temporary torch hub cache (the cost does not depend on the values; torchvision's own file, 528 MB with its
  classifier, adds the same read to old and new).
- bench run: `bench run --solver tweedie --op inpaint --num-images 4 --device cpu` in a child, old set-up
  patched in for "old"; its peak RSS is the maxrss of os.wait4's rusage of that child.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

BENCH_ARGS = ["run", "--solver", "tweedie", "--op", "inpaint", "--num-images", "4", "--device", "cpu",
              "--no-progress"]


@functools.lru_cache(maxsize=None)
def old_lpips_network(net: str, device):  # noqa: ANN001, ANN201 - the previous ipbench code, for comparison
    """ipbench's LPIPS set-up before this change (lpips_networks.lpips_network at its parent commit)."""
    import lpips as lpips_pkg
    import torch

    from ipbench.results import lpips_networks as ln

    backbone = ln._vgg_backbone() if net == "vgg" else ln._load_backbone(net)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = lpips_pkg.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    model.net.load_state_dict(backbone, strict=True)
    return model.eval().requires_grad_(False).to(device)


def _maxrss_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def _setup_child(which: str, net: str) -> None:
    """One set-up in this fresh process; prints seconds and peak RSS as JSON."""
    import torch

    from ipbench.results import lpips_networks

    build = old_lpips_network if which == "old" else lpips_networks.lpips_network
    before = _maxrss_mib()
    t = time.perf_counter()
    build(net, torch.device("cpu"))
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "maxrss_mib": _maxrss_mib(), "increase_mib": _maxrss_mib() - before}))


def _bench_child(which: str, out: str) -> None:
    """`bench run ...` in this process, with the old LPIPS set-up patched in for "old"."""
    if which == "old":
        from ipbench.results import metrics

        metrics.lpips_network = old_lpips_network  # metrics.py calls it by this name
    from ipbench.cli import cli

    cli.main([*BENCH_ARGS, "--out", out], prog_name="bench", standalone_mode=False)


def _measure(command: list[str], env: dict[str, str]) -> tuple[str, float]:
    """Run `command`; its stdout and its own peak RSS in MiB (os.wait4's rusage of that child)."""
    with tempfile.TemporaryFile() as stdout:
        child = subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise SystemExit(f"{command} failed with {child.returncode}")
        stdout.seek(0)
        return stdout.read().decode(), usage.ru_maxrss / 1024


def _write_vgg_file(folder: Path) -> None:
    import torch
    from torchvision.models.vgg import cfgs, make_layers

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        features = make_layers(cfgs["D"])
    folder.mkdir(parents=True)
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, folder / "vgg16-397923af.pth")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None, help="also write the Markdown report here")
    args = parser.parse_args()
    cases = [(kind, which, net) for kind, net in (("setup", "alex"), ("setup", "vgg"), ("bench", "alex"))
             for which in ("old", "new")]
    samples: dict[tuple, list[dict]] = {c: [] for c in cases}
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TORCH_HOME": str(Path(tmp) / "torch")}
        _write_vgg_file(Path(tmp) / "torch" / "hub" / "checkpoints")
        for round_ in range(args.repeats):
            for case in rng.sample(cases, len(cases)):
                kind, which, net = case
                if kind == "setup":
                    stdout, _ = _measure([sys.executable, __file__, "--setup", which, net], env)
                    samples[case].append(json.loads(stdout.strip().splitlines()[-1]))
                else:
                    out = str(Path(tmp) / f"run-{which}-{round_}")
                    _, maxrss = _measure([sys.executable, __file__, "--bench", which, out], env)
                    samples[case].append({"maxrss_mib": maxrss})
    from ipbench.results.report import publish

    publish(render(samples, args.repeats), args.out)


def render(samples: dict[tuple, list[dict]], repeats: int) -> str:
    med = {case: {k: statistics.median(s[k] for s in runs) for k in runs[0]} for case, runs in samples.items()}
    lines = ["# LPIPS set-up: the whole torchvision network (old) against the trunk layers only (new)", "",
             f"`python benchmarks/lpips_setup.py --repeats {repeats}`: one thread, fresh interpreters, cases "
             f"interleaved in shuffled order, medians of {repeats} runs each, ratio new / old.", "",
             "| set-up, `lpips_network(net, cpu)` | old s | new s | ratio | old peak RSS MiB | new | ratio "
             "| old increase MiB | new | ratio |", "|---|---|---|---|---|---|---|---|---|---|"]
    for net in ("alex", "vgg"):
        o, n = med[("setup", "old", net)], med[("setup", "new", net)]
        lines.append(f"| {net} | {o['seconds']:.3f} | {n['seconds']:.3f} | {n['seconds'] / o['seconds']:.2f} | "
                     f"{o['maxrss_mib']:.0f} | {n['maxrss_mib']:.0f} | {n['maxrss_mib'] / o['maxrss_mib']:.2f} | "
                     f"{o['increase_mib']:.0f} | {n['increase_mib']:.0f} | "
                     f"{n['increase_mib'] / max(o['increase_mib'], 1e-9):.2f} |")
    o, n = med[("bench", "old", "alex")]["maxrss_mib"], med[("bench", "new", "alex")]["maxrss_mib"]
    lines += ["", f"| `bench {' '.join(BENCH_ARGS)}` | old peak RSS MiB | new | ratio |", "|---|---|---|---|",
              f"| (fashion32, AlexNet LPIPS) | {o:.0f} | {n:.0f} | {n / o:.2f} |"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--setup":
        _setup_child(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "--bench":
        _bench_child(sys.argv[2], sys.argv[3])
    else:
        main()
