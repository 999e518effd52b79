"""The posterior-draws table of a run made with `--samples K` (results/samples.py says what each value is).

Per solver and operator, over its measurements (image x seed, each image's seeds averaged first, so n = images):
the mean of the per-draw metric (what one draw scores: the main table's number), the metric of the sample mean,
the best-of-K oracle (chosen against the truth, per metric: never a claim), the mean per-pixel std, the std's
correlation with the sample mean's error, and the draws' diversity. Each value is mean ± its standard error over
images, rounded where that error ends (rounding.py).
"""
from __future__ import annotations

import pandas as pd

from ipbench.results.metric_registry import METRICS
from ipbench.results.rounding import standard_error, with_spread

COLUMNS = {  # row field -> column header
    "psnr": "PSNR per draw",
    "mean.psnr": "PSNR of the sample mean",
    "oracle.psnr": "best-of-K PSNR (oracle)",
    "lpips": "LPIPS per draw",
    "mean.lpips": "LPIPS of the sample mean",
    "oracle.lpips": "best-of-K LPIPS (oracle)",
    "std_mean": "mean std",
    "std_error_corr": "corr(std, abs error)",
    "coverage.90": "coverage at 90%",
    "diversity": "diversity (pairwise LPIPS)",
}
DECIMALS = {"std_mean": 4, "std_error_corr": 3, "diversity": 4, "coverage.90": 3}


def has_samples(rows: pd.DataFrame) -> bool:
    return "samples" in rows.columns and bool((pd.to_numeric(rows["samples"], errors="coerce") > 1).any())


def samples_summary(rows: pd.DataFrame, solvers: list[str], operators: list[str]) -> pd.DataFrame:
    """Tidy: one line per (solver, operator, value) with mean, se, n (images) and the draws per measurement."""
    ok = rows[rows["status"] == "ok"]
    records = []
    for solver in solvers:
        for operator in operators:
            cell = ok[(ok["solver"] == solver) & (ok["operator"] == operator)]
            if cell.empty:
                continue
            draws = int(pd.to_numeric(cell["samples"], errors="coerce").max()) if "samples" in cell else 1
            for field in COLUMNS:
                if field not in cell.columns:
                    continue
                per_image = pd.to_numeric(cell[field], errors="coerce").groupby(cell["image"]).mean().dropna()
                if per_image.empty:
                    continue
                values = per_image.to_numpy(dtype=float)
                records.append({"solver": solver, "operator": operator, "value": field, "draws": draws,
                                "mean": float(values.mean()), "se": standard_error(values), "n": len(values)})
    return pd.DataFrame.from_records(records, columns=["solver", "operator", "value", "draws", "mean", "se", "n"])


def _decimals(field: str) -> int:
    metric = field.split(".")[-1]
    return DECIMALS.get(field, METRICS[metric].decimals if metric in METRICS else 3)


def samples_lines(part: pd.DataFrame) -> tuple[list[str], list[tuple[str, int, list[str]]]]:
    """One operator's lines of `samples_summary`: the COLUMNS fields it has, and per solver its draws per
    measurement and each field's mean ± standard error ("-" where the solver has no value)."""
    fields = [f for f in COLUMNS if f in set(part["value"])]
    lines = []
    for solver in dict.fromkeys(part["solver"]):
        line = part[part["solver"] == solver].set_index("value")
        cells = []
        for field in fields:
            if field not in line.index:
                cells.append("-")
                continue
            mean, se = float(line.loc[field, "mean"]), float(line.loc[field, "se"])
            cells.append(with_spread(mean, se, se, _decimals(field)))
        lines.append((str(solver), int(line["draws"].iloc[0]), cells))
    return fields, lines


def is_oracle(field: str) -> bool:
    """Whether a COLUMNS field is a best-of-K oracle (chosen against the truth: never an estimator's score)."""
    return field.startswith("oracle.")


def samples_markdown(summary: pd.DataFrame) -> str:
    """One table per operator: rows = solvers, columns = the draws per measurement and COLUMNS' values."""
    out = []
    for operator in dict.fromkeys(summary["operator"]):
        fields, lines = samples_lines(summary[summary["operator"] == operator])
        out.append("\n".join([f"{operator}:", "", "| solver | draws | " + " | ".join(COLUMNS[f] for f in fields) + " |",
                              "|---|---|" + "---|" * len(fields)]
                             + [f"| {solver} | {draws} | " + " | ".join(cells) + " |" for solver, draws, cells in lines]))
    return "\n\n".join(out) + "\n"


SAMPLES_NOTE = ("Posterior draws per measurement (`--samples`; a deterministic solver runs once, draws 1): each "
                "value the mean over images (an image's seeds averaged first) ± its standard error. PSNR per draw is "
                "what one draw scores (the main table); of the sample mean, the estimate of E[x | y]; best-of-K "
                "(oracle) takes each metric's best draw chosen against the truth, as some papers report: not an "
                "estimator, never compared. mean std: the per-pixel standard deviation over the draws, averaged over "
                "pixels; corr(std, abs error): its Pearson correlation with the sample mean's absolute error over an "
                "image's pixels; coverage at 90%: the fraction of pixels whose truth is inside the draws' 90% t prediction "
                "interval, mean +- t s sqrt(1 + 1/K) (0.9 for draws from a Gaussian posterior; less where the spread is "
                "too small; the rows have 50% and 95% too); diversity: the draws' mean pairwise LPIPS.")
