"""`bench report`: one self-contained HTML page over one or more run folders.

Everything the page shows is inline (figures and images as data: URIs, CSS in the page, no script), so
the file opens offline from disk and can be mailed or archived alone. The page is rendered from the
template templates/report.html.j2; this module only gathers what the template shows:

- provenance of each run (run.json), and warnings where runs differ in conventions, images or model
  (report_runs.py);
- per operator: the table (mean ± std, n, failed, skipped; the best mean per column marked where the
  paired test separates it from every other), the
  per-image distributions, quality against cost with the Pareto front, and the paired comparisons
  (results/paired_stats.py: bootstrap intervals over images, Wilcoxon signed-rank p-values) with the
  images whose paired difference is largest and smallest;
- sweeps (solver entries of one name that differ in one or more fields): each metric against one
  field, a line per value of the others, and the grid as a table;
- the figure grids the runs wrote;
- where solvers drew several posterior samples per measurement (`--samples`), the draws table, calibration
  figures and strips of first draw, sample mean and std map (report_draws.py).
"""
from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Sequence

import jinja2
import pandas as pd
from PIL import Image

from ipbench.errors import UsageError
from ipbench.files import atomic_write_text
from ipbench.imagefile import open_image
from ipbench.results import plots
from ipbench.results.metric_registry import METRICS, SET_METRICS
from ipbench.results.paired import image_differences
from ipbench.results.paired_stats import EXACT_LIMIT, check_resamples, min_nonzero, paired_comparisons, too_few_text
from ipbench.results.report_draws import draws_section
from ipbench.results.report_runs import ReportRun, all_rows, load_report_runs, provenance, run_warnings
from ipbench.results.grid import grid_shows
from ipbench.results.rounding import with_interval, with_spread
from ipbench.results.table import summarize
from ipbench.results.unobserved import shown
from ipbench.run_paths import grid_png, measurement_png, reconstruction_png, truth_png

TEMPLATE = "report.html.j2"
EXTREMES = 3  # images shown per side (largest and smallest paired difference) and comparison
THUMBNAIL = 128  # longest side of an embedded image; smaller ones are enlarged by the browser, pixelated


def _data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _image_uri(source: Path | Image.Image | None) -> str | None:
    """A saved image (a path, or an image made here) as a PNG data URI, shrunk to THUMBNAIL on its longest
    side; None if it is missing."""
    if source is None:
        return None
    if isinstance(source, Image.Image):
        return _encoded(source)
    if not source.is_file():
        return None
    with open_image(source, "run image") as image:
        return _encoded(image if image.mode in ("L", "RGB") else shown(image))  # holes of a measurement marked


def _encoded(image: Image.Image) -> str:
    if max(image.size) > THUMBNAIL:
        image = image.copy()
        image.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return _data_uri(buffer.getvalue())


def _table(summary: pd.DataFrame, metrics: Sequence[str], rows: pd.DataFrame, resamples: int,
           known: pd.DataFrame | None = None) -> dict[str, Any]:
    """One operator's table: a line per solver with mean ± std per metric (rounded where the mean's standard
    error ends), the best mean of each column marked where it is clearly the best (_clear_best, which reuses
    the lines of `known` it needs), n, failed and skipped counts, s / image and NFE; `note`: why no mark could
    be given, where that is too few images."""
    best, notes = {}, []
    for metric in metrics:
        winner, why = _clear_best(summary, rows, metric, resamples, known)
        if winner is not None:
            best[metric] = winner
        if why and why not in notes:
            notes.append(why)
    lines = []
    for solver, part in summary.groupby("solver", sort=False):
        cells = []
        for metric in metrics:
            hit = part[part["metric"] == metric]
            mean, std, se = ((float(hit["mean"].iloc[0]), float(hit["std"].iloc[0]), float(hit["se"].iloc[0]))
                             if len(hit) else (math.nan, math.nan, math.nan))
            text = "—" if math.isnan(mean) else with_spread(mean, std, se, METRICS[metric].decimals)
            cells.append({"text": text, "best": best.get(metric) == solver})
        first = part.iloc[0]
        applies = not first.get("not_applicable")
        lines.append({"solver": solver, "cells": cells if applies else [{"text": "n/a", "best": False}] * len(cells),
                      "n": int(first["n"]), "failed": int(first["failed"]), "skipped": int(first["skipped"]),
                      "reason": first.get("not_applicable") or "",
                      "seconds": "—" if math.isnan(first["seconds"]) else f"{first['seconds']:.3g}",
                      "nfe": "—" if math.isnan(first["nfe"]) else f"{first['nfe']:.0f}",
                      "fit": _fit_text(first.get("fit", math.nan)) if applies else "n/a"})
    truth = summary["fit_truth"].dropna() if "fit_truth" in summary else pd.Series(dtype=float)
    return {"header": [f"{METRICS[m].label} {'↑' if METRICS[m].better == 'higher' else '↓'}" for m in metrics],
            "lines": lines, "note": "; ".join(notes), "fit": _fit_text(truth.iloc[0]) if len(truth) else ""}


def _fit_text(value: float) -> str:
    """A measurement fit (results/measurement_fit.py) to 3 significant digits; — where there is none."""
    return "—" if value is None or math.isnan(float(value)) else f"{float(value):.3g}"


def _clear_best(summary: pd.DataFrame, rows: pd.DataFrame, metric: str, resamples: int,
                known: pd.DataFrame | None = None) -> tuple[str | None, str]:
    """The solver of best mean `metric` in one operator's `summary` if it is better than every other solver
    with a value there by paired_comparisons' rule (interval without 0 and signed-rank p < 0.05, on the
    images they share in `rows`), else None (a tie for the best, one solver alone, a pair without common
    images or one not separated); and, where a pair had too few images for the test, its too_few_text.
    `known`: paired_comparisons of these rows with the same resamples, whose lines against the winner are
    taken as they are (the same computation) instead of computed again."""
    means = summary.loc[summary["metric"] == metric].set_index("solver")["mean"].dropna()
    if len(means) < 2:
        return None, ""
    top = means.max() if METRICS[metric].better == "higher" else means.min()
    if (means == top).sum() > 1:
        return None, ""
    winner = str(means.idxmax() if METRICS[metric].better == "higher" else means.idxmin())
    pairs = _against(rows[rows["solver"].isin(means.index)], winner, metric, resamples, known)
    short = pairs[pairs["too_few"]]
    why = too_few_text(int(short["n"].min()), int(short.loc[short["n"].idxmin(), "nonzero"])) if len(short) else ""
    separated = set(pairs.loc[pairs["significant"] & (pairs["better"] == "baseline"), "solver"])
    return (winner if separated == set(means.index) - {winner} else None), why


def _against(rows: pd.DataFrame, winner: str, metric: str, resamples: int, known: pd.DataFrame | None
             ) -> pd.DataFrame:
    """paired_comparisons(rows, winner, [metric]): the lines `known` has with `winner` as baseline (every pair
    of a report without --baseline has each pair once, so about half of them) as they are, the others
    computed, in paired_comparisons' order (the solvers' first rows)."""
    reused = (known[(known["baseline"] == winner) & (known["metric"] == metric)
                    & known["solver"].isin(set(rows["solver"]))] if known is not None else known)
    if reused is None or reused.empty:
        return paired_comparisons(rows, winner, [metric], resamples=resamples)
    computed = paired_comparisons(rows[~rows["solver"].isin(set(reused["solver"]))], winner, [metric],
                                  resamples=resamples)
    order = {solver: i for i, solver in enumerate(dict.fromkeys(rows["solver"]))}
    both = pd.concat([reused, computed], ignore_index=True) if len(computed) else reused.reset_index(drop=True)
    return both.sort_values("solver", key=lambda solvers: solvers.map(order), kind="stable", ignore_index=True)


def _per_image(rows: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """ok rows averaged over seeds within (solver, operator, image): one value per image, as paired."""
    ok = rows[rows["status"] == "ok"]
    return ok.groupby(["solver", "operator", "image"], sort=False)[list(metrics)].mean().reset_index()


def _comparison_lines(comparisons: pd.DataFrame, metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One line per pair of solvers with, per metric, the mean difference and its interval (rounded where the
    mean's standard error ends), the Wilcoxon p and the verdict: which is better where the difference is
    significant (paired_stats: the interval leaves out 0 and p < 0.05), else why not."""
    lines = []
    for (solver, baseline), part in comparisons.groupby(["solver", "baseline"], sort=False):
        cells = []
        for metric in metrics:
            hit = part[part["metric"] == metric]
            if hit.empty:
                cells.append(None)
                continue
            line = hit.iloc[0]
            mean, interval = with_interval(line["mean"], line["low"], line["high"], line["se"],
                                           METRICS[metric].decimals)
            cells.append({"mean": mean, "interval": interval or "—",
                          "p": "—" if math.isnan(line["p_wilcoxon"]) else f"{line['p_wilcoxon']:.2g}",
                          "significant": bool(line["significant"]), "too_few": bool(line["too_few"]),
                          "verdict": _verdict(line, solver, baseline)})
        lines.append({"pair": f"{solver} − {baseline}", "n": int(part["n"].max()), "cells": cells})
    return lines


def _verdict(line: pd.Series, solver: str, baseline: str) -> str:
    """'S better' / 'B better' for a significant line of paired_comparisons, else the reason it is not."""
    if line["significant"]:
        return f"{solver} better" if line["better"] == "solver" else f"{baseline} better"
    if line["too_few"]:
        return too_few_text(int(line["n"]), int(line["nonzero"]))
    if math.isnan(line["low"]) or line["low"] <= 0 <= line["high"]:
        return "not significant (interval holds 0)"
    return "not significant (p ≥ 0.05)"


def extreme_picks(diff: pd.Series, per_side: int = EXTREMES) -> list[tuple[str, Any]]:
    """("largest", image) for the `per_side` images of largest difference, largest first, then ("smallest",
    image) for those of smallest, smallest first. Fewer than 2 x `per_side` images are split between the two
    sides (the larger half to "largest"), so no image is shown twice."""
    order = list(diff.sort_values(kind="stable").index)
    smallest = min(per_side, len(order) // 2)
    largest = min(per_side, len(order) - smallest)
    return ([("largest", image) for image in order[::-1][:largest]]
            + [("smallest", image) for image in order[:smallest]])


def _extremes(runs: Sequence[ReportRun], differences: dict[tuple[str, str], pd.Series], operator: str,
              reference: str, metric: str) -> list[dict[str, Any]]:
    """Per solver against `reference`: the EXTREMES images with the largest and the smallest paired
    difference in `metric` (`differences`: results.paired.image_differences, seeds averaged within an image),
    each shown as truth, measurement, reference and solver (the first seed's images)."""
    where = {label: (run, original) for run in runs for original, label in run.labels.items()}
    out = []
    for (solver, on), diff in differences.items():
        if on != operator or diff.empty:
            continue
        items = []
        for side, image in extreme_picks(diff):
            cells = _image_cells(where, operator, image, [reference, solver])
            items.append({"side": side, "image": image, "difference": f"{diff[image]:+.{METRICS[metric].decimals}f}",
                          "cells": cells})
        out.append({"solver": solver, "reference": reference, "metric": METRICS[metric].label, "pictures": items})
    return out


def _image_cells(where: dict[str, tuple[ReportRun, str]], operator: str, image: str, solvers: Sequence[str]
                 ) -> list[dict[str, Any]]:
    """Truth, measurement and each solver's reconstruction of `image` (the first seed) as data URIs."""
    run, _ = where[solvers[0]]
    seed = run.meta["config"]["seeds"][0]
    cells = [("truth", truth_png(run.path, image)), ("measurement", measurement_png(run.path, operator, image, seed))]
    for solver in solvers:
        solver_run, original = where[solver]
        cells.append((solver, reconstruction_png(solver_run.path, operator, original, image, seed)))
    return [{"label": label, "uri": _image_uri(path)} for label, path in cells]


def swept_fields(entries: Sequence[dict[str, Any]]) -> tuple[str, list[str]] | None:
    """The fields in which a family of solver entries (one name, run.json's `params`) differ: the one to
    plot along the x axis (numeric before categorical, then the most distinct values, then first named)
    and the others, in the order they are named; None when the entries do not differ at all."""
    names = list(dict.fromkeys(k for e in entries for k in e["params"]))
    varied = [k for k in names if len({repr(e["params"].get(k)) for e in entries}) > 1]
    if not varied:
        return None

    def rank(field: str) -> tuple[bool, int]:
        values = [e["params"].get(field) for e in entries]
        return plots._is_numeric(pd.Series(values, dtype=object)), len({repr(v) for v in values})

    x = max(varied, key=rank)  # max keeps the first of equals
    return x, [k for k in varied if k != x]


def _sweeps(runs: Sequence[ReportRun], per_image: pd.DataFrame, metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Families of solver entries of one name that differ in one or more fields (a sweep): each metric's
    mean ± standard error over images against one field, a line per value of the others, per operator,
    and the whole grid as a table (an entry per line: its fields, then each operator's metrics)."""
    sweeps = []
    for run in runs:
        families: dict[str, list[dict[str, Any]]] = {}
        for entry in run.meta["config"]["solvers"]:
            families.setdefault(entry["name"], []).append(entry)
        for name, entries in families.items():
            fields = swept_fields(entries) if len(entries) > 1 else None
            if fields is None:
                continue
            field, others = fields
            points, lines = [], []
            for entry in entries:
                label = run.labels.get(entry["label"], entry["label"])
                values = {f: entry["params"].get(f) for f in (field, *others)}
                cells = []
                for operator, part in per_image[per_image["solver"] == label].groupby("operator", sort=False):
                    point = {"operator": operator, **values}
                    for metric in metrics:
                        v = part[metric].dropna()
                        point[metric] = v.mean() if len(v) else math.nan
                        point[f"{metric}_se"] = v.std() / math.sqrt(len(v)) if len(v) > 1 else 0.0
                        se = point[f"{metric}_se"]
                        cells.append({"operator": operator, "metric": METRICS[metric].label,
                                      "text": "—" if math.isnan(point[metric]) else
                                      with_spread(point[metric], se, se, METRICS[metric].decimals)})
                    points.append(point)
                lines.append({"solver": label, "settings": [str(v) for v in values.values()], "cells": cells})
            if points:
                columns = list(dict.fromkeys((c["operator"], c["metric"]) for line in lines for c in line["cells"]))
                for line in lines:  # aligned to the columns: an entry restricted to some operators gets —
                    found = {(c["operator"], c["metric"]): c["text"] for c in line["cells"]}
                    line["cells"] = [found.get(column, "—") for column in columns]
                sweeps.append({"title": f"{name}: {', '.join([field, *others])} ({run.name})",
                               "fields": [field, *others], "columns": [f"{o} {m}" for o, m in columns],
                               "lines": lines, "x": field, "others": others,
                               "figure": _data_uri(plots.sweep_png(pd.DataFrame(points), field, others, metrics))})
    return sweeps


def build_report(paths: Sequence[str | Path], baseline: str | None = None, resamples: int = 10_000
                 ) -> dict[str, Any]:
    """What the template shows, gathered from the run folders (see the module's docstring)."""
    runs = load_report_runs(paths)
    rows = all_rows(runs)
    solvers = list(dict.fromkeys(rows["solver"]))
    if baseline is not None and baseline not in solvers:
        raise UsageError(f"--baseline {baseline}: not a solver of the runs; valid: {', '.join(solvers)}")
    metrics = [m for m in METRICS if m in rows.columns and m not in SET_METRICS]
    operators = list(dict.fromkeys(rows["operator"]))
    summary = summarize(rows, solvers, operators)
    per_image = _per_image(rows, metrics)
    comparisons = paired_comparisons(rows, baseline, metrics, resamples=resamples)
    reference = baseline or solvers[0]
    differences = image_differences(rows, reference, metrics[0])  # for the most different images
    sections = []
    for operator in operators:
        part = summary[summary["operator"] == operator]
        applied = [s for s in solvers if len(part[(part["solver"] == s) & (part["n"] > 0)])]
        cost_summary = (part.pivot_table(index="solver", columns="metric", values="mean", sort=False)
                        .reindex(columns=metrics).reset_index())  # a metric with no value at all stays, as nan
        cost_summary = cost_summary.merge(part.drop_duplicates("solver")[["solver", "seconds", "nfe"]], on="solver")
        cost_figure, fronts = plots.cost_png(cost_summary[cost_summary["solver"].isin(applied)],
                                             [m for m in ("psnr", "lpips") if m in metrics])
        paired = comparisons[comparisons["operator"] == operator]
        sections.append({
            "operator": operator,
            "table": _table(part, metrics, rows[rows["operator"] == operator], resamples, paired),
            "distribution": _data_uri(plots.distribution_png(per_image[per_image["operator"] == operator],
                                                             applied, metrics)),
            "cost": _data_uri(cost_figure),
            "fronts": [{"metric": METRICS[m].label, "cost": plots.COSTS[c], "solvers": ", ".join(s)}
                       for (m, c), s in fronts.items()],
            "forest": _data_uri(plots.forest_svg(paired, metrics), "image/svg+xml") if len(paired) else None,
            "comparisons": _comparison_lines(paired, metrics),
            "extremes": _extremes(runs, differences, operator, reference, metrics[0]),
        })
    return {
        "title": "ipbench report: " + ", ".join(r.name for r in runs),
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ipbench_version": _version(),
        "runs": [provenance(r) for r in runs],
        "warnings": run_warnings(runs),
        "baseline": baseline,
        "resamples": resamples,
        "min_images": min_nonzero(0.05),
        "exact_limit": EXACT_LIMIT,
        "metrics": [METRICS[m].label for m in metrics],
        "sections": sections,
        "sweeps": _sweeps(runs, per_image, metrics),
        "grids": _grids(runs),
        "draws": _draws(runs, rows, solvers, operators),
    }


def _draws(runs: Sequence[ReportRun], rows: pd.DataFrame, solvers: Sequence[str], operators: Sequence[str]
           ) -> dict[str, Any] | None:
    """The posterior draws section (report_draws.py) with its figures and images as data URIs; None without draws."""
    section = draws_section(runs, rows, solvers, operators)
    for part in section["operators"] if section else []:
        part["figure"] = _data_uri(part["figure"]) if part["figure"] is not None else None
        for group in part["strips"]:
            for strip in group["strips"]:
                strip["cells"] = [{"label": label, "uri": _image_uri(source)} for label, source in strip["cells"]]
    return section


def _grids(runs: Sequence[ReportRun]) -> list[dict[str, Any]]:
    """Each run's own grid of each of its operators (grid-<operator>.png, where `bench run` wrote it), with
    what it shows (results/grid.py records it)."""
    grids = []
    for run in runs:
        for operator in (o.get("label", o["name"]) for o in run.meta["config"]["operators"]):
            path = grid_png(run.path, operator)
            if path.is_file():
                grids.append({"run": run.name, "name": f"grid-{operator}", "uri": _data_uri(path.read_bytes()),
                              "shows": grid_shows(path)})
    return grids


def render(context: dict[str, Any], template: str = TEMPLATE) -> str:
    """The page from the template (autoescaped: labels and commands are text, never markup); `template`: another
    page of templates/ (a bench tune folder's, results/tune_report.py)."""
    environment = jinja2.Environment(loader=jinja2.PackageLoader("ipbench.results", "templates"),
                                     autoescape=True, undefined=jinja2.StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True)
    return environment.get_template(template).render(**context)


@dataclass(frozen=True)
class WrittenReport:
    """What `write_report` wrote: the file, the runs' warnings, how many paired differences (solver pair x
    operator x metric) there are, how many of them are significant (interval without 0 and p < 0.05) and
    how many have too few images for the test to reach p < 0.05."""

    path: Path
    warnings: list[str]
    comparisons: int
    significant: int
    too_few: int = 0


def write_report(paths: Sequence[str | Path], out: str | Path, baseline: str | None = None,
                 resamples: int = 10_000) -> WrittenReport:
    """Render the report of the run folders `paths` into the HTML file `out` (written whole, atomically)."""
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"--out {out}: is a folder; give an .html file name, e.g. {out / 'report.html'}")
    context = build_report(paths, baseline, check_resamples(resamples))  # before minutes of work, not after
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, render(context))
    cells = [cell for section in context["sections"] for line in section["comparisons"] for cell in line["cells"]
             if cell is not None]
    return WrittenReport(out, context["warnings"], len(cells), sum(cell["significant"] for cell in cells),
                         sum(cell["too_few"] for cell in cells))


def _version() -> str:
    try:
        return version("ipbench")
    except PackageNotFoundError:
        return "unknown"
