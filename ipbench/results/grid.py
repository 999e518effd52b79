"""Figure grids: one PNG per operator; rows = images, columns = truth, measurement, one per solver.

With the strips of `bench run --trace K`, also trace-<operator>.png: how each solver's x0_hat converges.
Pixels a measurement does not see are drawn as a magenta checkerboard (results/unobserved.py). Each grid
records in a PNG text chunk how many images it shows and of which seed: `bench run` writes the run's own
grids (which `bench report` embeds), and `bench grid` with other options writes to another folder
(`grid_folder`) instead of replacing them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from ipbench.errors import UsageError
from ipbench.files import write_png
from ipbench.imagefile import open_image
from ipbench.results.rows import read_run_json, run_rows
from ipbench.results.unobserved import shown
from ipbench.run_paths import (IMAGES, TRUTH, grid_png, measurement_png, reconstruction_png, std_png, trace_figure_png,
                               trace_png, truth_png)

MIN_CELL = 96  # small images are shown enlarged (nearest) so that pixels stay visible
PAD, LABEL_H, LABEL_W = 4, 18, 110
LINE_H, CHAR_W = 12, 6  # the default font's line height and character width
GRID_KEY = "ipbench-grid"  # a grid PNG's text chunk: JSON {"images": N, "seed": S}
RUN_DEFAULT_IMAGES = 8  # `bench run --max-grid-images`'s default: what a grid from before GRID_KEY shows
TRACE_STEPS_KEY = "ipbench-trace-steps"  # a trace strip's text chunk (benchmark/trace.py writes it)


def _open_cell(path: Path, size: tuple[int, int]) -> Image.Image:
    if not path.exists():  # a failed solver leaves no image
        cell = Image.new("RGB", size, (128, 128, 128))
        ImageDraw.Draw(cell).text((6, size[1] // 2 - 6), "failed", fill=(255, 255, 255), font=ImageFont.load_default())
        return cell
    with open_image(path, "run image") as img:
        return shown(img, size)


def _applicable_pairs(run_dir: Path) -> set[tuple[str, str]]:
    """(solver, operator) pairs with a row that is not `skipped`: a grid leaves out solvers that do not apply."""
    return {(r["solver"], r["operator"]) for r in run_rows(run_dir) if r.get("status") != "skipped"}


def _text_chunk(path: Path, key: str) -> Any:
    """The JSON a PNG keeps in its text chunk `key` (a grid's GRID_KEY, a strip's TRACE_STEPS_KEY), or None
    for a PNG from before it was recorded."""
    with open_image(path, "run image") as image:
        text = getattr(image, "text", {}).get(key)
    return None if text is None else json.loads(text)


def _recorded(path: Path) -> dict[str, int] | None:
    """What a grid PNG records of itself (GRID_KEY), or None for a grid from before it did."""
    return _text_chunk(path, GRID_KEY)


def grid_shows(path: Path) -> str:
    """'first N images, seed S' for a grid PNG; empty for a grid that does not record it."""
    recorded = _recorded(path)
    return "" if recorded is None else f"first {recorded['images']} images, seed {recorded['seed']}"


def own_grid_images(run_dir: str | Path) -> int | None:
    """How many images the run's own grids (run_dir/grid-*.png) show; None when it has none."""
    run_dir = Path(run_dir)
    grids = sorted(run_dir.glob("grid-*.png"))
    if not grids:
        return None
    recorded = _recorded(grids[0])
    if recorded is not None:
        return int(recorded["images"])
    return min(RUN_DEFAULT_IMAGES, len(read_run_json(run_dir)["images"]["ids"]))


def grid_folder(run_dir: str | Path, max_images: int) -> Path:
    """Where `bench grid RUN --max-images N` writes: RUN itself when its own grids show as many images (or it
    has none), else RUN/grids-<n>-images, so that the grids `bench report` embeds are not replaced."""
    run_dir = Path(run_dir)
    shows = min(max_images, len(read_run_json(run_dir)["images"]["ids"]))
    own = own_grid_images(run_dir)
    return run_dir if own is None or own == shows else run_dir / f"grids-{shows}-images"


def write_grids(run_dir: str | Path, max_images: int = 8, out: str | Path | None = None) -> list[Path]:
    """Write grid-<operator>.png for every operator of the run (first seed, first `max_images` images), and
    trace-<operator>.png where the run saved trace strips, into `out` (default: the run folder)."""
    run_dir = Path(run_dir)
    folder = run_dir if out is None else Path(out)
    meta = read_run_json(run_dir)
    if not any((run_dir / IMAGES / TRUTH).glob("*.png")):
        raise UsageError(f"{run_dir}: no images to show (images/truth is empty); run `bench run` into it first")
    config = meta["config"]
    seed = config["seeds"][0]
    ids = meta["images"]["ids"][:max_images]
    _, height, width = meta["model"]["image_shape"]
    scale = max(1, -(-MIN_CELL // max(height, width)))
    cell = (width * scale, height * scale)
    font = ImageFont.load_default()
    written = []
    applies = _applicable_pairs(run_dir)
    for operator_label in (o.get("label", o["name"]) for o in config["operators"]):
        solvers = [s["label"] for s in config["solvers"] if (s["label"], operator_label) in applies]
        # a run with --samples: each solver's per-pixel std over its draws, beside its first draw
        spread = {name for name in solvers if any(std_png(run_dir, operator_label, name, i, seed).exists() for i in ids)}
        columns = ["truth", "measurement"] + [c for name in solvers
                                              for c in ([name, f"{name} std"] if name in spread else [name])]
        grid = Image.new("RGB", (LABEL_W + len(columns) * (cell[0] + PAD), LABEL_H + len(ids) * (cell[1] + PAD)), "white")
        draw = ImageDraw.Draw(grid)
        for c, name in enumerate(columns):
            draw.text((LABEL_W + c * (cell[0] + PAD) + 2, 3), name[: max(4, cell[0] // CHAR_W)], fill="black",
                      font=font)
        for r, image_id in enumerate(ids):
            top = LABEL_H + r * (cell[1] + PAD)
            draw.text((2, top + cell[1] // 2 - 6), image_id[:18], fill="black", font=font)
            for c, name in enumerate(columns):
                path = (truth_png(run_dir, image_id) if c == 0 else
                        measurement_png(run_dir, operator_label, image_id, seed) if c == 1 else
                        std_png(run_dir, operator_label, name[:-4], image_id, seed)
                        if name.endswith(" std") and name[:-4] in spread else
                        reconstruction_png(run_dir, operator_label, name, image_id, seed))
                grid.paste(_open_cell(path, cell), (LABEL_W + c * (cell[0] + PAD), top))
        target = grid_png(folder, operator_label)
        write_png(grid, target, {GRID_KEY: json.dumps({"images": len(ids), "seed": seed})})
        written.append(target)
        trace = _trace_figure(run_dir, folder, operator_label, [s["label"] for s in config["solvers"]], ids, seed,
                              scale, cell[0])
        if trace is not None:
            written.append(trace)
    return written


def _frame_labels(path: Path, frames: int) -> list[list[str]]:
    """Under each frame of a strip: its step and diffusion time, from the strip's PNG text (none in strips
    from before it was recorded)."""
    times = _text_chunk(path, TRACE_STEPS_KEY) or []
    if len(times) != frames:
        return [[] for _ in range(frames)]
    return [[f"step {step}", f"t={t}"] for step, t in times]


def _trace_figure(run_dir: Path, folder: Path, operator_label: str, solvers: list[str], ids: list[str], seed: int,
                  scale: int, frame_width: int) -> Path | None:
    """trace-<operator>.png from the strips `bench run --trace K` saved: one row per (solver, image), labelled
    with both, x0_hat at steps 0, K, 2K, ... and the last, left to right, each frame's step and t under it.
    None when the run saved no strip."""
    strips = [(solver, image_id, trace_png(run_dir, operator_label, solver, image_id, seed))
              for solver in solvers for image_id in ids]
    strips = [strip for strip in strips if strip[2].is_file()]
    if not strips:
        return None
    strip_images = []
    for *_, path in strips:
        with open_image(path, "run image") as img:
            strip_images.append(shown(img, (img.width * scale, img.height * scale)))
    height = max(img.height for img in strip_images)
    frames = [max(1, img.width // frame_width) for img in strip_images]
    row_h = height + 2 * LINE_H + PAD
    figure = Image.new("RGB", (LABEL_W + max(frames) * (frame_width + PAD), LABEL_H + len(strips) * row_h), "white")
    draw, font = ImageDraw.Draw(figure), ImageFont.load_default()
    draw.text((LABEL_W + 2, 3), "x0_hat per solver step, first to last (t: diffusion time)", fill="black", font=font)
    chars = (LABEL_W - 4) // CHAR_W
    for r, ((solver, image_id, path), strip, count) in enumerate(zip(strips, strip_images, frames)):
        top = LABEL_H + r * row_h
        if r > 0 and solver != strips[r - 1][0]:  # a rule between solvers
            draw.line((0, top - PAD // 2, figure.width, top - PAD // 2), fill=(160, 160, 160))
        draw.text((2, top + height // 2 - LINE_H), solver[:chars], fill="black", font=font)
        draw.text((2, top + height // 2), image_id[:chars], fill=(90, 90, 90), font=font)
        for f, lines in enumerate(_frame_labels(path, count)):
            left = LABEL_W + f * (frame_width + PAD)
            figure.paste(strip.crop((f * frame_width, 0, (f + 1) * frame_width, strip.height)), (left, top))
            for k, line in enumerate(lines):
                draw.text((left + 2, top + height + 1 + k * LINE_H), line[: frame_width // CHAR_W], fill="black",
                          font=font)
    target = trace_figure_png(folder, operator_label)
    write_png(figure, target)
    return target
