"""Comparison tables: rows = solvers, columns = operator x metric, mean +- std over images (and seeds); with a
baseline solver, each other solver's paired difference to it and its bootstrap interval beside (paired_stats.py).
Every figure shown is rounded where its standard error ends (results/rounding.py); the tidy CSV keeps full
precision."""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ipbench.errors import UsageError
from ipbench.files import atomic_write, atomic_write_text
from ipbench.results.evaluated_on import split_text
from ipbench.results.metric_registry import METRICS, SET_METRICS
from ipbench.results.samples_table import SAMPLES_NOTE, has_samples, samples_markdown, samples_summary
from ipbench.results.rounding import SIGNIFICANT, standard_error, with_interval, with_spread
from ipbench.results.rows import load_rows, read_run_json

if TYPE_CHECKING:  # torch is imported only where FID is computed: tables and reports without it stay light
    import torch

# the tidy CSV's, with a baseline
DIFFERENCE_COLUMNS = ["diff", "diff_low", "diff_high", "p_wilcoxon", "diff_se", "significant"]
RESAMPLES = 10_000  # bootstrap resamples of the images per interval
SECONDS_HEADER = "s / image (mean over operators)"
FIT_HEADER, FIT_HEADER_TEX = "fit χ²/m", r"fit $\chi^2/m$"


def summarize(rows: pd.DataFrame, solver_order: list[str] | None = None, operator_order: list[str] | None = None
              ) -> pd.DataFrame:
    """Tidy summary: one line per (solver, operator, metric) with mean, std (ddof 1), the mean's standard
    error `se` (over images: the std of the per-image means, seeds averaged within an image, / sqrt(images);
    the seeds of an image share its truth, so the image is the unit), n ok rows, `images` among them, failed
    rows and skipped rows (the solver does not apply to the operator)."""
    records = []
    solvers = solver_order or list(dict.fromkeys(rows["solver"]))
    operators = operator_order or list(dict.fromkeys(rows["operator"]))
    metrics = [m for m in METRICS if m in rows.columns]  # the run's metrics, in METRICS order
    for solver in solvers:
        for operator in operators:
            cell = rows[(rows["solver"] == solver) & (rows["operator"] == operator)]
            if cell.empty:
                continue
            ok = cell[cell["status"] == "ok"]
            skipped = int((cell["status"] == "skipped").sum())
            for metric in metrics:
                values = ok[metric].astype(float)
                per_image = values.groupby(ok["image"]).mean()
                records.append({"solver": solver, "operator": operator, "metric": metric,
                                "mean": values.mean() if len(values) else math.nan,
                                "std": values.std(ddof=1) if len(values) > 1 else math.nan,
                                "se": standard_error(per_image.to_numpy()),
                                "n": int(len(values)), "images": int(len(per_image)),
                                "failed": int(len(cell) - len(ok) - skipped), "skipped": skipped,
                                "not_applicable": "" if len(ok) or not skipped else
                                str(cell.loc[cell["status"] == "skipped", "error"].iloc[0]),
                                "seconds": float(ok["seconds"].mean()) if len(ok) else math.nan,
                                "nfe": float(ok["nfe"].mean()) if len(ok) else math.nan,
                                "clamped": _column(ok, "clamped").mean() if len(ok) else 0.0,
                                "clamped_max": _column(ok, "clamped_max").max() if len(ok) else 0.0,
                                **_alignment_counts(ok), **_fits(ok)})
    return pd.DataFrame.from_records(records)


def _fits(ok: pd.DataFrame) -> dict[str, float]:
    """The cell's median measurement fit (results/measurement_fit.py), and the true images' on the same
    measurements; none for rows written before the fit existed, so their tables stay as they were."""
    if "fit" not in ok:
        return {}
    return {name: float(ok[name].astype(float).median()) if name in ok and len(ok) else math.nan
            for name in ("fit", "fit_truth")}


def _has_fit(summary: pd.DataFrame) -> bool:
    return "fit" in summary and bool(summary["fit"].notna().any())


def _alignment_counts(ok: pd.DataFrame) -> dict[str, int]:
    """Rows scored after alignment to the truth (results/alignment.py), and how many of them were replaced by
    an equivalent other than the reconstruction itself."""
    if "alignment" not in ok:  # no operator of the run aligns: no columns, so earlier tables stay as they were
        return {}
    named = ok["alignment"].dropna()
    named = named[named.astype(str) != ""]
    return {"aligned": int(len(named)), "realigned": int((named != "identity").sum())}


def _column(rows: pd.DataFrame, name: str) -> pd.Series:
    """A numeric column of the rows, zeros where it is missing (rows written before it existed)."""
    return rows[name].fillna(0).astype(float) if name in rows else pd.Series(0.0, index=rows.index)


def with_fid(summary: pd.DataFrame, run_dir: Path, rows: pd.DataFrame, device: torch.device) -> pd.DataFrame:
    """`summary` plus one FID line per (solver, operator) (results/fid.py; no std: one value per cell)."""
    from ipbench.results.fid import cell_fids

    fids = cell_fids(run_dir, rows.to_dict("records"), device)
    lines = summary.drop_duplicates(["solver", "operator"]).set_index(["solver", "operator"])
    records = [{**lines.loc[cell].to_dict(), "solver": cell[0], "operator": cell[1], "metric": "fid", "mean": value,
                "std": math.nan, "se": math.nan, "n": n} for cell, (value, n) in fids.items() if cell in lines.index]
    return pd.concat([summary, pd.DataFrame.from_records(records)], ignore_index=True) if records else summary


def with_differences(summary: pd.DataFrame, comparisons: pd.DataFrame) -> pd.DataFrame:
    """`summary` plus DIFFERENCE_COLUMNS: each (solver, operator, metric) line's paired difference to the
    baseline from `comparisons` (paired_comparisons against it): mean, bootstrap interval, Wilcoxon p, the
    mean's standard error and whether it is significant (paired_stats: interval and test agree); nan where
    there is none (the baseline itself, n/a cells, set metrics)."""
    found = comparisons.rename(columns={"mean": "diff", "low": "diff_low", "high": "diff_high", "se": "diff_se"})
    return summary.merge(found[["solver", "operator", "metric", *DIFFERENCE_COLUMNS]], how="left",
                         on=["solver", "operator", "metric"])


def _cell(mean: float, std: float, se: float, metric: str, latex: bool = False, applies: bool = True) -> str:
    """'mean ± std' rounded where the mean's standard error `se` ends (rounding.with_spread)."""
    if not applies:
        return "n/a"
    if math.isnan(mean):
        return "-"
    return with_spread(mean, std, se, METRICS[metric].decimals, r" $\pm$ " if latex else " ± ")


def _difference(line: pd.DataFrame, metric: str, latex: bool = False) -> str:
    """' Δ +1.20 [+0.80, +1.60]*' for a summary line that has a paired difference to the baseline: the mean
    and its bootstrap interval, rounded where the mean's standard error ends, and * when it is significant
    (paired_stats: the interval leaves out 0 and the signed-rank p < 0.05); '' for a line without one."""
    if "diff" not in line or math.isnan(line["diff"].iloc[0]):
        return ""
    diff, low, high, se = (float(line[column].iloc[0]) for column in ("diff", "diff_low", "diff_high", "diff_se"))
    mean, interval = with_interval(diff, low, high, se, METRICS[metric].decimals)
    flag = line["significant"].iloc[0] if "significant" in line else False
    star = "*" if interval and pd.notna(flag) and bool(flag) else ""
    delta = r"$\Delta$" if latex else "Δ"
    return f" {delta} {mean}" + (f" {interval}{star}" if interval else "")


def _se(line: pd.DataFrame) -> float:
    """The standard error of a summary line's mean; nan for a summary without one (or a set metric)."""
    return float(line["se"].iloc[0]) if "se" in line else math.nan


def _wide(summary: pd.DataFrame, latex: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and body of the human-readable table."""
    operators = list(dict.fromkeys(summary["operator"]))
    counts = _applicable(summary).groupby(["solver", "operator"])[["n", "failed"]].first()
    uniform_n = counts["n"].nunique() <= 1 and counts["failed"].sum() == 0  # n/a cells do not count
    arrow = {"higher": r"$\uparrow$" if latex else "↑", "lower": r"$\downarrow$" if latex else "↓"}
    metrics = list(dict.fromkeys(summary["metric"]))
    fit = _has_fit(summary)
    header = ["solver"] + [column for operator in operators for column in
                           [f"{operator} {METRICS[m].label} {arrow[METRICS[m].better]}" for m in metrics]
                           + ([f"{operator} {FIT_HEADER_TEX if latex else FIT_HEADER}"] if fit else [])]
    header += [SECONDS_HEADER, "NFE"]  # one column for every operator of the row: their mean, and it says so
    if not uniform_n:
        header += [f"{operator} n (failed)" for operator in operators]
    body = []
    for solver, part in summary.groupby("solver", sort=False):
        line = [solver]
        for operator in operators:
            for metric in metrics:
                hit = part[(part["operator"] == operator) & (part["metric"] == metric)]
                if not len(hit):
                    line.append("-")
                    continue
                applies = not hit["not_applicable"].iloc[0]
                line.append(_cell(hit["mean"].iloc[0], hit["std"].iloc[0], _se(hit), metric, latex, applies)
                            + _difference(hit, metric, latex))
            if fit:
                line.append(_fit_cell(part[part["operator"] == operator]))
        seconds, nfe = part["seconds"].mean(), part["nfe"].mean()  # NaN where no cell of the row ran (all n/a)
        line += [f"{seconds:.3g}" if not math.isnan(seconds) else "-", f"{nfe:.0f}" if not math.isnan(nfe) else "-"]
        if not uniform_n:
            for operator in operators:
                hit = part[part["operator"] == operator]
                if len(hit) and hit["not_applicable"].iloc[0]:
                    line.append("n/a")
                else:
                    line.append(f"{hit['n'].iloc[0]} ({hit['failed'].iloc[0]})" if len(hit) else "-")
        body.append(line)
    return header, body


def _fit_cell(cell: pd.DataFrame) -> str:
    """A cell's median measurement fit to 3 significant digits; n/a where the solver does not apply, - where
    there is none (no ok rows, a noiseless measurement, rows from before the fit existed)."""
    if not len(cell):
        return "-"
    if cell["not_applicable"].iloc[0]:
        return "n/a"
    value = float(cell["fit"].iloc[0]) if "fit" in cell else math.nan
    return "-" if math.isnan(value) else f"{value:.3g}"


def _fit_note(summary: pd.DataFrame) -> str:
    """What the fit column is, with the true images' own fit per operator as the yardstick."""
    if not _has_fit(summary):
        return ""
    truth = summary.dropna(subset=["fit_truth"]).drop_duplicates("operator").set_index("operator")["fit_truth"]
    yardstick = ", ".join(f"{op} {value:.3g}" for op, value in truth.items() if not math.isnan(value))
    return (f"{FIT_HEADER}: measurement fit, the median over a cell's rows of Pearson's chi-squared per measurement "
            f"(the mean over measurements of (y - A(x_hat)) squared over v, the noise model's variance at A(x_hat)): "
            f"about 1 is consistent with the noise, above 1 ignores the data, below 1 fits the noise"
            + (f"; the true images score {yardstick}" if yardstick else "") + ". ")


def _applicable(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary without its n/a cells (pairs the solver does not apply to)."""
    if "not_applicable" not in summary:  # a summary from before skipped rows existed
        return summary
    return summary[summary["not_applicable"].fillna("") == ""]


def _not_applicable_note(summary: pd.DataFrame) -> str:
    """Which cells are n/a, and why (the solver's own reason, once per reason)."""
    if "not_applicable" not in summary:
        return ""
    cells = summary[summary["not_applicable"].fillna("") != ""].drop_duplicates(["solver", "operator"])
    by_reason: dict[tuple[str, str], list[str]] = {}
    for row in cells.itertuples():
        by_reason.setdefault((row.solver, row.not_applicable), []).append(row.operator)
    parts = [f"{solver} on {', '.join(ops)} ({reason})" for (solver, reason), ops in by_reason.items()]
    return ("n/a: the solver does not apply to the operator, not a failure: " + "; ".join(parts) + ". ") if parts else ""


def _clamped_note(summary: pd.DataFrame) -> str:
    """Which solvers returned pixels outside [0, 1] (clamped before scoring), with the mean fraction."""
    if "clamped" not in summary or not (summary["clamped"] > 0).any():
        return ""
    by_solver = summary.groupby("solver", sort=False)
    share, reach = by_solver["clamped"].mean(), by_solver["clamped_max"].max()
    parts = [f"{solver} {100 * share[solver]:.2g}% (by up to {reach[solver]:.2g})" for solver in share.index
             if share[solver] > 0]
    return "Pixels outside [0, 1], clamped before scoring: " + ", ".join(parts) + ". "


def _alignment_note(summary: pd.DataFrame) -> str:
    """Which cells were scored up to the operator's trivial ambiguities, and how often that changed the image."""
    if "aligned" not in summary:
        return ""
    summary = summary.fillna({"aligned": 0, "realigned": 0})
    cells = summary.drop_duplicates(["solver", "operator"])
    cells = cells[cells["aligned"] > 0]
    if cells.empty:
        return ""
    operators = ", ".join(dict.fromkeys(cells["operator"]))
    return (f"{operators}: scored after alignment to the truth (the closest in MSE of the reconstruction, its "
            f"180-degree rotation, its negative about the padding's value and its translates over a blank border, "
            f"all of the same measurement), which replaced {int(cells['realigned'].sum())} of "
            f"{int(cells['aligned'].sum())} reconstructions; rows keep the unaligned metrics as <metric>_raw. ")


def _difference_note(baseline: str, comparisons: pd.DataFrame | None, summary: pd.DataFrame) -> str:
    """What the Δ of each cell is: against which solver, paired how, over how many images, which interval,
    when it is marked, and where it cannot be. (No percent sign: the LaTeX caption would read it as a comment.)"""
    from ipbench.results.paired_stats import BOOTSTRAP_METHOD, EXACT_LIMIT, min_nonzero, too_few_text

    found = comparisons if comparisons is not None else pd.DataFrame(columns=["n", "nonzero", "too_few"])
    ns = sorted(set(found["n"])) if len(found) else [0]
    n_text = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}..{ns[-1]}"
    set_metrics = [METRICS[m].label for m in dict.fromkeys(summary["metric"]) if m in SET_METRICS]
    no_pairs = f"{', '.join(set_metrics)}: no Δ (one value per cell, nothing to pair). " if set_metrics else ""
    need = min_nonzero(0.05)
    if len(found) and found["too_few"].all():
        fewest = found.sort_values(["n", "nonzero"]).iloc[0]
        limit = f"No * anywhere: {too_few_text(int(fewest['n']), int(fewest['nonzero']))}. "
    elif len(found) and found["too_few"].any():
        limit = (f"No * where fewer than {need} images differ from the baseline's: the signed-rank test cannot "
                 f"reach p < 0.05 there. ")
    else:
        limit = ""
    return (f"Δ: the paired difference solver - {baseline} (the baseline), on the same image and seed (the same "
            f"measurement), the seeds of an image averaged first; mean over images ({n_text}) with its "
            f"{BOOTSTRAP_METHOD} bootstrap interval at confidence 0.95 ({RESAMPLES:,} resamples of the images); * "
            f"marks a difference whose interval excludes 0 and whose Wilcoxon signed-rank p (exact up to "
            f"{EXACT_LIMIT} images that differ) is below 0.05. "
            + limit + no_pairs)


def _noise_note(config: dict) -> str:
    """Each operator's noise, where any is not Gaussian (a Gaussian run's caption stays as it always was; its
    sigma_y is in run.json and the rows)."""
    operators = config.get("operators", [])
    if all(o.get("params", {}).get("noise", "gaussian") == "gaussian" for o in operators):
        return ""
    from ipbench.operators.noise import describe_noise

    return "Noise: " + "; ".join(f"{o.get('label', o['name'])} {describe_noise(o.get('params', {}))}"
                                 for o in operators) + ". "


def _condition_note(config: dict) -> str:
    """What a class-conditional prior was given (benchmark/condition.py), where the run set it."""
    condition = config.get("condition")
    if condition is None:
        return ""
    given = {"true": "each image's own class", "wrong": "a wrong class per image (a misspecified prior)",
             "none": "no class (its unconditional half)"}.get(condition, condition)
    return f"Prior given {given}, classifier-free guidance w = {config.get('guidance', 1.0):g} (rows: model.class). "


def caption(run_dir: Path, summary: pd.DataFrame, compile_seconds: float = 0.0, baseline: str | None = None,
            comparisons: pd.DataFrame | None = None) -> str:
    """What the numbers are: model, images, n, the noise where not Gaussian, the metric conventions, and what
    s / image leaves out; with a `baseline`, what the differences to it (`comparisons`, from paired_comparisons)
    are."""
    meta = read_run_json(run_dir)
    metric_meta = meta.get("conventions", {}).get("metric_summary", {})  # "" for a metric it does not describe
    ns = sorted(set(_applicable(summary)["n"])) or [0]
    n_text = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}..{ns[-1]}"
    seeds = meta["config"]["seeds"]
    return (f"Model `{meta['config']['model']}`, images `{meta['images'].get('source', '?')}` "
            f"({split_text(meta['images'])}), seeds {seeds}; "
            f"mean ± std over images x seeds ({n_text} per cell), each figure rounded where the standard "
            f"error of its mean over images ends, that rounded to {SIGNIFICANT} significant digits. "
            + _noise_note(meta["config"]) + _condition_note(meta["config"])
            + (_difference_note(baseline, comparisons, summary) if baseline is not None else "")
            + "".join(f"{METRICS[m].label}: {metric_meta.get(m, '')}. " for m in dict.fromkeys(summary["metric"]))
            + _fit_note(summary) + _clamped_note(summary) + _alignment_note(summary) + _not_applicable_note(summary)
            + "s / image: solver wall time per image"
            + (f" (compiling the network for new batch shapes, {compile_seconds:.0f} s in all, left out)."
               if compile_seconds > 0 else "."))


def to_markdown(summary: pd.DataFrame, caption_text: str) -> str:
    header, body = _wide(summary)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n\n" + caption_text + "\n"


def to_latex(summary: pd.DataFrame, caption_text: str) -> str:
    header, body = _wide(summary, latex=True)
    # A bare % would comment out the rest of a LaTeX line.
    esc = lambda s: s.replace("_", r"\_").replace("#", r"\#").replace("%", r"\%")  # noqa: E731
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}", r"\toprule",
             " & ".join(esc(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(c) if i == 0 else c for i, c in enumerate(row)) + r" \\" for row in body]
    caption_tex = esc(caption_text.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("`", "")
                      .replace(FIT_HEADER, FIT_HEADER_TEX))
    lines += [r"\bottomrule", r"\end{tabular}", r"\caption{" + caption_tex + "}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def reference_markdown(summary: pd.DataFrame, reference: list[dict]) -> str:
    """Published numbers of a suite's [[reference]] tables beside ours (same solver, operator, metric)."""
    settings = any("setting" in ref for ref in reference)  # published on other data: say which, beside the value
    head = ["solver", "operator", "metric", "ipbench (this run)", "published", *(["published on"] if settings else []),
            "source"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for ref in reference:
        metric = str(ref.get("metric", "")).lower()
        hit = summary[(summary["solver"] == ref.get("solver")) & (summary["operator"] == ref.get("operator"))
                      & (summary["metric"] == metric)]
        measured = metric in set(summary["metric"])
        ours = _cell(hit["mean"].iloc[0], hit["std"].iloc[0], _se(hit), metric) if len(hit) else "-" if measured \
            else "not measured"
        status = "" if ref.get("verified", False) else " (unverified)"
        label = METRICS[metric].label if metric in METRICS else metric.upper()
        setting = [ref.get("setting", "this run's setting")] if settings else []
        cells = [str(ref.get("solver")), str(ref.get("operator")), label, ours, f"{ref.get('value')}{status}", *setting,
                 str(ref.get("source", ""))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_tables(run_dir: str | Path, device: str | torch.device = "cpu", baseline: str | None = None) -> str:
    """Write table.md, table.csv (tidy) and table.tex into the run folder; return the Markdown.

    `device` is where set metrics (FID) run their network. With `baseline` (a solver label of the run), each
    other solver's cells also give its paired difference to the baseline with a bootstrap interval, and the
    CSV has DIFFERENCE_COLUMNS; a label the run does not have is a UsageError naming the run's."""
    run_dir = Path(run_dir)
    rows = load_rows(run_dir)
    if rows.empty:
        return "(no rows yet)\n"
    config = read_run_json(run_dir)["config"]
    solvers = [s["label"] for s in config["solvers"]]
    if baseline is not None and baseline not in solvers:
        raise UsageError(f"baseline {baseline}: not a solver of {run_dir} (its solvers: {', '.join(solvers)})")
    summary = summarize(rows, solvers, [o.get("label", o["name"]) for o in config["operators"]])
    if "fid" in config.get("metrics", ()):
        from ipbench.device import resolve_device

        summary = with_fid(summary, run_dir, rows, resolve_device(device))
    comparisons = None
    if baseline is not None:  # scipy.stats is imported here, not for every table: it takes about a second
        from ipbench.results.paired_stats import COLUMNS, paired_comparisons

        metrics = [m for m in dict.fromkeys(summary["metric"]) if m not in SET_METRICS]
        comparisons = (paired_comparisons(rows, baseline, metrics, resamples=RESAMPLES)
                       if baseline in set(rows["solver"]) else pd.DataFrame(columns=COLUMNS))
        summary = with_differences(summary, comparisons)
    compiled = float(rows["compile_seconds"].sum()) if "compile_seconds" in rows.columns else 0.0  # per-image shares
    text = caption(run_dir, summary, compiled, baseline, comparisons)
    markdown = to_markdown(summary, text)
    if config.get("reference"):
        markdown += "\nPublished numbers beside ours:\n\n" + reference_markdown(summary, config["reference"])
    if has_samples(rows):  # --samples K: what the draws of one measurement give beside one draw's score
        draws = samples_summary(rows, solvers, [o.get("label", o["name"]) for o in config["operators"]])
        markdown += "\nPosterior draws (samples.csv):\n\n" + samples_markdown(draws) + "\n" + SAMPLES_NOTE + "\n"
        atomic_write(run_dir / "samples.csv", lambda partial: draws.to_csv(partial, index=False))
    atomic_write_text(run_dir / "table.md", markdown)
    atomic_write(run_dir / "table.csv", lambda partial: summary.to_csv(partial, index=False))
    atomic_write_text(run_dir / "table.tex", to_latex(summary, text))
    return markdown
