"""Which memory layout inductor picks for the FFHQ-256 network's compiled graphs, and why (no GPU needed).

torch.compile's inductor keeps a graph's intermediate activations channels_last ("layout optimisation") only
where its heuristic (torch._inductor.graph.GraphLowering.decide_layout_opt) expects a gain. For a training
graph, the kind a gradient solver such as DPS compiles (forward + backward w.r.t. x_t), the heuristic says no
as soon as one 3x3 convolution has at least twice as many input as output channels. This script lists those
convolutions in the network and asks the heuristic about the graphs that a DPS step (training) and a no-grad
solver (inference) compile, with and without `force_layout_optimization` (ipbench's `layout_opt` switch).
The graphs are traced on the CPU with mkldnn off, which takes the heuristic's CUDA path.

    python benchmarks/layout_decision.py [--image-size 64] [--out results/gpu/layout_decision.md]
"""
from __future__ import annotations

import argparse

import torch
from torch._dynamo.backends.common import aot_autograd
from torch._functorch.aot_autograd import make_boxed_func
from torch._inductor import config as inductor_config
from torch._inductor.graph import GraphLowering

from ipbench.models.adm import ffhq256_network
from ipbench.results.report import publish


def halving_convolutions(net: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """The convolutions that make the heuristic skip layout optimisation for training graphs."""
    return [(name, tuple(m.weight.shape)) for name, m in net.named_modules()
            if isinstance(m, torch.nn.Conv2d) and 2 * m.weight.shape[0] <= m.weight.shape[1] and m.weight.shape[2] > 1]


def layout_decisions(model: torch.nn.Module, image_size: int) -> list[tuple[str, bool, bool]]:
    """(graph kind, inductor's decision, decision with force_layout_optimization) for a gradient and a no-grad call."""
    decisions: list[tuple[str, bool, bool]] = []

    def decide(kind: str, inference: bool):
        def compiler(graph: torch.fx.GraphModule, example_inputs: list) -> object:
            default = GraphLowering.decide_layout_opt(graph, is_inference=inference)
            with inductor_config.patch(force_layout_optimization=True):
                forced = GraphLowering.decide_layout_opt(graph, is_inference=inference)
            decisions.append((kind, default, forced))
            return make_boxed_func(graph.forward)
        return compiler

    backend = aot_autograd(fw_compiler=decide("training (forward + gradient, as DPS)", inference=False),
                           inference_compiler=decide("inference (no gradient)", inference=True),
                           bw_compiler=lambda graph, example_inputs: make_boxed_func(graph.forward))
    eps = torch.compile(model.eps, backend=backend, dynamic=False)
    x = torch.randn(1, 3, image_size, image_size, requires_grad=True)
    t = torch.full((1,), 500)
    torch.autograd.grad(eps(x, t).sum(), x)
    with torch.no_grad():
        eps(x.detach(), t)
    return decisions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=64, help="traced input size (the layers do not depend on it)")
    parser.add_argument("--out", default=None, help="also write the report here (Markdown)")
    args = parser.parse_args()
    torch.backends.mkldnn.enabled = False  # on CPU with mkldnn, inductor always lays convolutions out channels_last
    model = ffhq256_network(None, args.image_size, 0, torch.device("cpu"))
    convs = halving_convolutions(model.net)
    total = sum(isinstance(m, torch.nn.Conv2d) for m in model.net.modules())
    lines = ["# Inductor's layout decision for the FFHQ-256 network", "",
             f"torch {torch.__version__}; deepinv DiffUNet, FFHQ configuration; traced at {args.image_size} px on CPU "
             "(mkldnn off: the heuristic's CUDA path)", "",
             f"3x3 convolutions with >= 2x as many input as output channels: {len(convs)} of {total}", ""]
    lines += [f"- {name} {shape}" for name, shape in convs]
    lines += ["", "| graph | channels_last layout (inductor's heuristic) | with force_layout_optimization |", "|---|---|---|"]
    lines += [f"| {kind} | {default} | {forced} |" for kind, default, forced in layout_decisions(model, args.image_size)]
    publish("\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
