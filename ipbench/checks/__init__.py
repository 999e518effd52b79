"""Ground-truth checks of the solvers: problems whose exact answer is known (gaussian_truth.py)."""
