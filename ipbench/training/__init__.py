"""Training and sampling a score model (`bench train`, `bench sample`): the loop and what it reads and writes, and
the two stages of a latent prior (its autoencoder, then a latent DDPM).

It sits above the solvers (sampling runs the shared reverse process of ipbench.solvers.diffusion), so
that ipbench.models stays the score-model interface and its loaders.
"""
