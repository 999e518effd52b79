"""A class-conditional prior's class accuracy on its own samples, per classifier-free guidance scale.

For each scale w, `--per-class` samples of every class c are drawn with the condition c at guidance w
(training/export.py's `draw_samples`, the sampler of `bench sample --class --guidance`), and the shipped
Fashion-MNIST classifier (ipbench/checks/fashion_classifier.py) says how many are of class c. Guidance that works
makes this accuracy rise with w (w = 0 is the unconditional model: about 1/10). Every scale starts sample i of
class c from the same noise, so the scales differ by the guidance alone. Example:

    python benchmarks/guidance_accuracy.py --model fashion32-cond --scales 0 1 3 5 --per-class 50 \\
        --out results/guidance_accuracy.md
"""
from __future__ import annotations

import argparse
import datetime
import math
import shlex
import sys
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from ipbench.checks.fashion_classifier import CLASSES, IMAGE_SHAPE, load_fashion_classifier, predict
from ipbench.device import resolve_device
from ipbench.errors import UsageError
from ipbench.models import ScoreModel, load_model
from ipbench.models.conditional import ClassConditional, unwrapped
from ipbench.results.report import publish
from ipbench.training.export import draw_samples

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


@dataclass
class ScaleAccuracy:
    """How many of one guidance scale's samples the classifier put in the class they were drawn for."""

    scale: float
    correct: int
    n: int
    per_class: dict[str, float] = field(default_factory=dict)  # the model's class name -> accuracy

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    def interval(self) -> tuple[float, float]:
        """Wilson's 95% score interval of the binomial proportion: it stays inside [0, 1] and keeps its
        coverage near 0 and 1, where the normal approximation's does not."""
        p, n = self.accuracy, self.n
        centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
        half = Z95 / (1 + Z95 ** 2 / n) * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n))
        return max(0.0, centre - half), min(1.0, centre + half)


def check_model(model: ScoreModel, name: str, scales: Sequence[float]) -> list[int]:
    """The classifier's index of each of the model's classes; a one-line UsageError naming the model when it is
    not class-conditional, not 1 x 32 x 32, has classes the classifier does not know, or cannot run a scale."""
    inner = unwrapped(model)
    if not isinstance(inner, ClassConditional):
        raise UsageError(f"model {name} is not class-conditional ({type(inner).__name__}): guidance accuracy needs "
                         "a ClassConditional model (trained with bench train --conditional)")
    if tuple(model.image_shape) != IMAGE_SHAPE:
        raise UsageError(f"model {name}: samples of shape {tuple(model.image_shape)}; the Fashion-MNIST classifier "
                         f"takes {IMAGE_SHAPE}")
    unknown = [c for c in inner.class_names if c not in CLASSES]
    if unknown:
        raise UsageError(f"model {name}: class {unknown[0]!r} is not a Fashion-MNIST class ({', '.join(CLASSES)})")
    for scale in scales:
        problem = inner.condition_problem(True, float(scale))
        if problem is not None:
            raise UsageError(f"model {name} {problem}")
    return [CLASSES.index(c) for c in inner.class_names]


def guidance_accuracy(model: ScoreModel, classifier: nn.Module, scales: Sequence[float], per_class: int, steps: int,
                      seed: int = 0, eta: float = 1.0, batch_size: int | None = None,
                      name: str = "model") -> list[ScaleAccuracy]:
    """One ScaleAccuracy per scale: `per_class` samples of each of the model's classes, classified."""
    if per_class < 1:
        raise UsageError(f"--per-class {per_class}: give at least 1 sample per class")
    judged_as = check_model(model, name, scales)
    names = unwrapped(model).class_names  # type: ignore[attr-defined]
    labels = [c for c in range(len(names)) for _ in range(per_class)]
    truth = torch.tensor([judged_as[c] for c in labels])
    results = []
    for scale in scales:
        samples = draw_samples(model, len(labels), steps, seed, eta=eta, labels=labels, guidance=float(scale),
                               batch_size=batch_size)
        hit = predict(classifier, samples) == truth
        per = {names[c]: float(hit[c * per_class:(c + 1) * per_class].double().mean()) for c in range(len(names))}
        results.append(ScaleAccuracy(float(scale), int(hit.sum()), len(labels), per))
    return results


def render(results: list[ScaleAccuracy], header: list[str]) -> str:
    """The Markdown report: the settings, then one row per scale (overall and per class)."""
    names = list(results[0].per_class)
    lines = ["# Class accuracy of a conditional prior's samples by guidance scale", "", *header, "",
             "| guidance w | samples | correct | accuracy | 95% interval (Wilson) | " + " | ".join(names) + " |",
             "|---" * (5 + len(names)) + "|"]
    for r in results:
        low, high = r.interval()
        cells = " | ".join(f"{r.per_class[c]:.2f}" for c in names)
        lines.append(f"| {r.scale:g} | {r.n} | {r.correct} | {r.accuracy:.3f} | [{low:.3f}, {high:.3f}] | {cells} |")
    falls = [f"{b.scale:g}" for a, b in zip(results, results[1:]) if b.accuracy <= a.accuracy]
    lines += ["", "Accuracy rises with each larger w listed: " +
              ("yes." if not falls else f"no (not above the previous scale's at w = {', '.join(falls)}).")]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a registered name, NAME:PATH or a checkpoint file")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.0, 1.0, 3.0, 5.0])
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--steps", type=int, default=100, help="strided reverse steps (as bench sample)")
    parser.add_argument("--eta", type=float, default=1.0, help="1 = DDPM, 0 = DDIM")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=500, help="samples through the network at once")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="Markdown file to write (also printed)")
    args = parser.parse_args()
    try:
        device = resolve_device(args.device)
        model = load_model(args.model, device)
        classifier = load_fashion_classifier(device)
        results = guidance_accuracy(model, classifier, args.scales, args.per_class, args.steps, args.seed,
                                    args.eta, args.batch_size, args.model)
    except UsageError as exc:  # one line and exit status 2, as the bench commands do
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    header = [f"- Command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`",
              f"- Date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; torch "
              f"{torch.__version__}; device {device}.",
              f"- Model: `{args.model}`; {args.per_class} samples per class and scale, {args.steps} steps, eta "
              f"{args.eta:g}, seed {args.seed} (the same starting noise at every scale).",
              "- Judge: the shipped Fashion-MNIST classifier (`ipbench/checks/fashion_classifier.py`; its test "
              "accuracy: results/fashion_classifier.md). A row's accuracy: the fraction of samples drawn for "
              "class c that it classifies as c; per-class columns likewise."]
    publish(render(results, header), args.out)


if __name__ == "__main__":
    main()
