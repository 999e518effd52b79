"""Figure grids: one PNG per operator; rows = images, columns = truth, measurement, one per solver.

With the strips of `bench run --trace K`, also trace-<operator>.png: how each solver's x0_hat converges.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ipbench.errors import UsageError
from ipbench.files import atomic_write
from ipbench.imagefile import open_image
from ipbench.results.rows import read_run_json, run_rows

MIN_CELL = 96  # small images are shown enlarged (nearest) so that pixels stay visible
PAD, LABEL_H, LABEL_W = 4, 18, 110


def _open_cell(path: Path, size: tuple[int, int]) -> Image.Image:
    if not path.exists():  # a failed solver leaves no image
        cell = Image.new("RGB", size, (128, 128, 128))
        ImageDraw.Draw(cell).text((6, size[1] // 2 - 6), "failed", fill=(255, 255, 255), font=ImageFont.load_default())
        return cell
    with open_image(path, "run image") as img:
        return img.convert("RGB").resize(size, Image.Resampling.NEAREST)


def _applicable_pairs(run_dir: Path) -> set[tuple[str, str]]:
    """(solver, operator) pairs with a row that is not `skipped`: a grid leaves out solvers that do not apply."""
    return {(r["solver"], r["operator"]) for r in run_rows(run_dir) if r.get("status") != "skipped"}


def write_grids(run_dir: str | Path, max_images: int = 8) -> list[Path]:
    """Write grid-<operator>.png for every operator of the run (first seed, first `max_images` images)."""
    run_dir = Path(run_dir)
    meta = read_run_json(run_dir)
    if not any((run_dir / "images" / "truth").glob("*.png")):
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
        columns = ["truth", "measurement"] + [s["label"] for s in config["solvers"]
                                              if (s["label"], operator_label) in applies]
        grid = Image.new("RGB", (LABEL_W + len(columns) * (cell[0] + PAD), LABEL_H + len(ids) * (cell[1] + PAD)), "white")
        draw = ImageDraw.Draw(grid)
        for c, name in enumerate(columns):
            draw.text((LABEL_W + c * (cell[0] + PAD) + 2, 3), name[: max(4, cell[0] // 6)], fill="black", font=font)
        for r, image_id in enumerate(ids):
            top = LABEL_H + r * (cell[1] + PAD)
            draw.text((2, top + cell[1] // 2 - 6), image_id[:18], fill="black", font=font)
            for c, name in enumerate(columns):
                path = (run_dir / "images" / "truth" / f"{image_id}.png" if name == "truth"
                        else run_dir / "images" / operator_label / name / f"{image_id}-s{seed}.png")
                grid.paste(_open_cell(path, cell), (LABEL_W + c * (cell[0] + PAD), top))
        target = run_dir / f"grid-{operator_label}.png"
        atomic_write(target, lambda partial: grid.save(partial, format="PNG"))
        written.append(target)
        trace = _trace_figure(run_dir, operator_label, [s["label"] for s in config["solvers"]], ids, seed, scale)
        if trace is not None:
            written.append(trace)
    return written


def _trace_figure(run_dir: Path, operator_label: str, solvers: list[str], ids: list[str], seed: int,
                  scale: int) -> Path | None:
    """trace-<operator>.png from the strips `bench run --trace K` saved: one row per (solver, image), x0_hat
    at steps 0, K, 2K, ... and the last, left to right. None when the run saved no strip."""
    strips = [(f"{solver} {image_id}"[:18], run_dir / "images" / operator_label / solver / "trace" /
               f"{image_id}-s{seed}.png") for solver in solvers for image_id in ids]
    strips = [(label, path) for label, path in strips if path.is_file()]
    if not strips:
        return None
    sizes = []
    for _, path in strips:
        with open_image(path, "run image") as img:
            sizes.append((img.width * scale, img.height * scale))
    width, height = max(w for w, _ in sizes), max(h for _, h in sizes)
    figure = Image.new("RGB", (LABEL_W + width, LABEL_H + len(strips) * (height + PAD)), "white")
    draw, font = ImageDraw.Draw(figure), ImageFont.load_default()
    draw.text((LABEL_W + 2, 3), "x0_hat, first step to last", fill="black", font=font)
    for r, ((label, path), size) in enumerate(zip(strips, sizes)):
        top = LABEL_H + r * (height + PAD)
        draw.text((2, top + height // 2 - 6), label, fill="black", font=font)
        figure.paste(_open_cell(path, size), (LABEL_W, top))
    target = run_dir / f"trace-{operator_label}.png"
    atomic_write(target, lambda partial: figure.save(partial, format="PNG"))
    return target
