"""The pieces the deepinv reference-check scripts share (ipbench/benchmark/check_setup.py)."""
from __future__ import annotations

import argparse
import math

import pytest

from ipbench.benchmark.check_setup import add_problem_options, agreement, load_problem
from ipbench.results.paired import t_interval


def test_t_interval_is_the_student_t_half_width() -> None:
    # differences 1, 2, 3: mean 2, std 1, t_{0.975, 2} = 4.302653
    mean, half = t_interval([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert math.isnan(t_interval([0.5])[1])


def test_agreement_needs_a_spread() -> None:
    assert agreement(0.1, 0.2) == "agree"
    assert agreement(-0.3, 0.2) == "DISAGREE"
    assert agreement(0.0, float("nan")).startswith("no verdict")


def test_the_shared_options_load_the_models_default_images() -> None:
    parser = argparse.ArgumentParser()
    add_problem_options(parser, num_images=3, seeds=[4, 5])
    args = parser.parse_args(["--device", "cpu"])
    assert (args.model, args.num_images, args.seeds, args.out) == ("fashion32", 3, [4, 5], None)
    device, model, images, x = load_problem(args)
    assert device.type == "cpu" and len(images) == 3
    assert x.shape == (3, *model.image_shape) and x.device.type == "cpu"
