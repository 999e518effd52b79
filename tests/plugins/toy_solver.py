"""A plugin as a user would write it: one file, one registered solver (loaded with --plugin)."""
from dataclasses import dataclass

import torch

from ipbench import Solver, register_solver
from ipbench.operators import back_project


@register_solver
@dataclass
class ShrinkToGrey(Solver):
    """Back-projection pulled towards mid-grey by `weight` (a toy with one hyperparameter)."""

    name = "toy-shrink"
    weight: float = 0.5

    def solve(self, y, op, model, generators):
        x = back_project(op, y)
        return (1 - self.weight) * x + self.weight * torch.full_like(x, 0.5)
