"""What the reference-check scripts (benchmarks/deepinv_*_check.py) share: their common options and the
model and images those options name, so that each script only adds what is its own."""
from __future__ import annotations

import argparse
from typing import NamedTuple

import torch
from torch import Tensor

from ipbench.data import ImageSet, load_images
from ipbench.device import resolve_device
from ipbench.models import load_model
from ipbench.models.base import ScoreModel


class CheckProblem(NamedTuple):
    """The device, the model, its default test images and those images as one tensor on the device."""

    device: torch.device
    model: ScoreModel
    images: ImageSet
    x: Tensor


def add_problem_options(parser: argparse.ArgumentParser, num_images: int, seeds: list[int]) -> None:
    """--model, --num-images, --seeds, --device and --out, with the script's own defaults for the counts."""
    parser.add_argument("--model", default="fashion32")
    parser.add_argument("--num-images", type=int, default=num_images)
    parser.add_argument("--seeds", type=int, nargs="+", default=seeds)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="also write the Markdown report here")


def load_problem(args: argparse.Namespace) -> CheckProblem:
    """The model `args.model` on `args.device` and the first `args.num_images` of its default image set."""
    device = resolve_device(args.device)
    model = load_model(args.model, device)
    images = load_images(model.default_image_set, model.image_shape, args.num_images)
    return CheckProblem(device, model, images, images.images.to(device))


def agreement(difference: float, spread: float) -> str:
    """'agree' when |difference| <= spread (the seed-to-seed std), 'DISAGREE' otherwise, and 'no verdict'
    when there is no spread to judge by (a single seed gives none)."""
    if spread != spread:  # NaN: fewer than two seeds
        return "no verdict (one seed: no spread)"
    return "agree" if abs(difference) <= spread else "DISAGREE"

