"""The warning where a run evaluates on images its parameters were tuned on, or on a tuning split: from
run.json configs written by hand (solver-level and per-operator `tuned` provenance, overlapping and
disjoint ids, other sets), through `bench table`, `bench report` and `bench run` (at its start), and the
split in the table's caption."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ipbench.cli import cli
from ipbench.data import register_image_set
from ipbench.data.sets import FASHION_MNIST_TEST
from ipbench.results.evaluated_on import evaluation_warnings

IDS = ["000-ankle-boot", "001-pullover", "002-trouser"]
NOT_HELD_OUT = "its numbers on them are not held out: evaluate on images disjoint from the tuning ones"
VAL_SPLIT = ("images fashion32-val are the val split, a tuning split: these are not test results; evaluate on a "
             "test split (e.g. fashion32-test) for the comparison")

# another registered set of fashion32-test's origin and split: the same images may be in both
register_image_set("fashion32-test-twin", split="test", origin=FASHION_MNIST_TEST)(lambda: [])


def _tuned(image_set: str = "fashion32-test", ids: list[str] | None = IDS[:2], fields: tuple[str, ...] = ("zeta",)
           ) -> dict[str, Any]:
    """A `tuned` table as `bench tune` writes it (docs/architecture.md's shared suite format)."""
    table = {"fields": list(fields), "image_set": image_set, "seeds": [0], "budget": 8, "objective": "psnr",
             "best": 21.3, "best_se": 0.4, "trials": 8, "pruned": 3, "failed": 0, "sampler": "optuna TPE, seed 0",
             "study": "study.db"}
    return table if ids is None else {**table, "ids": ids}


def _meta(solver_extra: dict[str, Any], source: str = "fashion32-test", split: str | None = "test",
          ids: list[str] = IDS) -> dict[str, Any]:
    """run.json's config and images for dps (with `solver_extra`) and tweedie on two operators."""
    operators = [{"name": "inpaint-box", "label": "inpaint-box", "params": {}},
                 {"name": "deblur-gauss", "label": "deblur", "params": {}}]
    solvers = [{"name": "dps", "label": "dps", "params": {"zeta": 0.5}, **solver_extra},
               {"name": "tweedie", "label": "tweedie", "params": {}}]
    return {"config": {"model": "fashion32", "seeds": [0], "solvers": solvers, "operators": operators},
            "model": {"name": "fashion32", "image_shape": [1, 32, 32]},
            "images": {"source": source, "split": split, "ids": ids}}


def _overlap(who: str, fields: str, shared: str, image_set: str = "fashion32-test", note: str = "") -> str:
    return f"{who}: {fields} tuned on {shared} of the 3 images this run evaluates on ({image_set}{note}); {NOT_HELD_OUT}"


@pytest.mark.parametrize("solver_extra, expected", [
    ({"tuned": _tuned()}, [_overlap("dps (on inpaint-box, deblur)", "zeta", "2")]),
    ({"per_operator": {"inpaint-box": {"zeta": 1.0, "tuned": _tuned(ids=IDS, fields=("zeta", "normalize"))}}},
     [_overlap("dps on inpaint-box", "zeta, normalize", "3")]),
    ({"tuned": _tuned(ids=IDS[2:]), "per_operator": {"deblur": {"tuned": _tuned(ids=IDS[:1])}}},
     [_overlap("dps (on inpaint-box, deblur)", "zeta", "1"), _overlap("dps on deblur", "zeta", "1")]),
    ({"tuned": _tuned(ids=None)}, [_overlap("dps (on inpaint-box, deblur)", "zeta", "an unknown number",
                                            note=", ids not recorded")]),
    ({"tuned": _tuned("fashion32-test-twin")},
     [_overlap("dps (on inpaint-box, deblur)", "zeta", "2", "fashion32-test-twin")]),
    ({"tuned": _tuned(ids=IDS[:1], fields=())}, [_overlap("dps (on inpaint-box, deblur)", "parameters", "1")]),
    # tuned elsewhere, or on none of these images: a held-out run, no warning
    ({"tuned": _tuned(ids=["5000-pullover", "5001-dress"])}, []),
    ({"per_operator": {"inpaint-box": {"tuned": _tuned(ids=["099-pullover"])}}}, []),
    ({"tuned": _tuned("fashion32-val", ids=IDS)}, []),  # same ids, but another split of the source
    ({"tuned": _tuned("photos", ids=IDS)}, []),
    ({"tuned": _tuned("/data/fashion", ids=IDS)}, []),  # a folder is not the registered set
    ({"operators": ["deblur"], "per_operator": {"inpaint-box": {"tuned": _tuned(ids=IDS)}}}, []),  # never runs there
    ({"per_operator": {"inpaint-box": {"zeta": 1.0}}}, []),
    ({}, []),
], ids=["solver-level", "per-operator", "both", "ids-unrecorded", "same-origin-and-split", "no-fields",
        "disjoint-ids", "disjoint-per-operator", "other-split", "other-set", "a-folder", "operator-not-run",
        "untuned-per-operator", "untuned"])
def test_tuned_provenance_overlapping_the_runs_images_warns_once_per_table(solver_extra: dict[str, Any],
                                                                          expected: list[str]) -> None:
    assert evaluation_warnings(_meta(solver_extra)) == expected


def test_a_folder_is_the_same_set_under_another_spelling(tmp_path: Path) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    meta = _meta({"tuned": _tuned(str(tmp_path / "images" / ".." / "images"))}, source=str(folder), split=None)
    assert evaluation_warnings(meta) == [_overlap("dps (on inpaint-box, deblur)", "zeta", "2",
                                                  str(tmp_path / "images" / ".." / "images"))]


@pytest.mark.parametrize("images, expected", [
    ({"source": "fashion32-val", "split": "val"}, [VAL_SPLIT]),
    ({"source": "fashion32-val"}, [VAL_SPLIT]),  # a run.json from before splits: the set's split now
    ({"source": "my-train", "split": "train"}, [VAL_SPLIT.replace("fashion32-val", "my-train")
                                                .replace("the val split", "the train split")]),
    ({"source": "fashion32-test", "split": "test"}, []),
    ({"source": "/data/folder", "split": None}, []),
])
def test_a_run_on_a_tuning_split_warns(images: dict[str, Any], expected: list[str]) -> None:
    meta = _meta({})
    meta["images"] = {**images, "ids": IDS}
    assert evaluation_warnings(meta) == expected


def _run_folder(folder: Path, meta: dict[str, Any]) -> Path:
    """A finished run written by hand: run.json and an ok row per (solver, operator, image)."""
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps(meta))
    rows = [{"solver": s["label"], "operator": o["label"], "image": image, "seed": 0, "status": "ok",
             "psnr": 20.0 + i, "ssim": 0.5, "lpips": 0.1, "seconds": 0.01, "nfe": 1}
            for s in meta["config"]["solvers"] for o in meta["config"]["operators"]
            for i, image in enumerate(meta["images"]["ids"])]
    (folder / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


TUNED_ON_VAL = {"per_operator": {"inpaint-box": {"tuned": _tuned("fashion32-val", ids=["5000-pullover"])}}}
VAL_IDS = ["5000-pullover", "5001-dress", "5002-shirt"]
VAL_OVERLAP = (f"dps on inpaint-box: zeta tuned on 1 of the 3 images this run evaluates on (fashion32-val); "
               f"{NOT_HELD_OUT}")


@pytest.mark.parametrize("command", ["table", "report"])
def test_table_and_report_print_each_warning_once_and_exit_0(tmp_path: Path, command: str) -> None:
    run = _run_folder(tmp_path / "run", _meta(TUNED_ON_VAL, "fashion32-val", "val", VAL_IDS))
    done = CliRunner().invoke(cli, [command, str(run)], prog_name="bench")
    assert done.exit_code == 0, done.output
    warned = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert warned == [f"warning: {VAL_OVERLAP}", f"warning: {VAL_SPLIT}"]
    if command == "table":
        assert "images `fashion32-val` (split val), seeds [0]" in (run / "table.md").read_text()
    else:
        page = (run / "report.html").read_text()
        assert "fashion32-val (split val), 3 images" in page and "not held out" in page


def test_table_and_report_of_a_held_out_run_print_no_warning(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "run", _meta({"tuned": _tuned("fashion32-val", ids=VAL_IDS)}))
    for command in ("table", "report"):
        done = CliRunner().invoke(cli, [command, str(run)], prog_name="bench")
        assert done.exit_code == 0, done.output
        assert "warning" not in done.stderr
    assert "images `fashion32-test` (split test), seeds [0]" in (run / "table.md").read_text()


def test_a_report_of_several_runs_names_the_run_of_each_warning(tmp_path: Path) -> None:
    held_out = _run_folder(tmp_path / "held-out", _meta({}))
    on_val = _run_folder(tmp_path / "on-val", _meta(TUNED_ON_VAL, "fashion32-val", "val", VAL_IDS))
    done = CliRunner().invoke(cli, ["report", str(held_out), str(on_val), "--out", str(tmp_path / "ab.html")])
    assert done.exit_code == 0, done.output
    warned = [line for line in done.stderr.splitlines() if "not held out" in line or "tuning split" in line]
    assert warned == [f"warning: on-val: {VAL_OVERLAP}", f"warning: on-val: {VAL_SPLIT}"]


def test_a_tiny_run_on_the_val_split_warns_at_start_and_records_the_split(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = CliRunner().invoke(cli, ["run", "--solver", "hole-fill", "--op", "inpaint", "--images", "fashion32-val",
                                    "--num-images", "2", "--out", str(out), "--no-progress"])
    assert done.exit_code == 0, done.output
    lines = done.stderr.splitlines()
    assert [line for line in lines if line.startswith("warning: ")] == [f"warning: {VAL_SPLIT}"]
    assert lines.index(f"warning: {VAL_SPLIT}") < 3  # at the start, with what the run uses
    images = json.loads((out / "run.json").read_text())["images"]
    assert (images["source"], images["split"], images["ids"]) == ("fashion32-val", "val", VAL_IDS[:2])
    assert "images `fashion32-val` (split val)" in done.stdout
    again = CliRunner().invoke(cli, ["table", str(out)])
    assert [line for line in again.stderr.splitlines() if line.startswith("warning: ")] == [f"warning: {VAL_SPLIT}"]


TUNED_SUITE = """
model = "fashion32"
images = "fashion32-test"
num_images = 2
[[operator]]
name = "inpaint-box"
[[operator]]
name = "denoise"
label = "noisy"
[[solver]]
name = "hole-fill"
sigma = 1.5
[solver.tuned]
fields = ["sigma"]
image_set = "fashion32-val"
ids = ["5000-pullover", "5001-dress"]
seeds = [0]
budget = 16
objective = "psnr"
best = 21.3
best_se = 0.4
trials = 16
pruned = 5
failed = 0
sampler = "TPESampler(seed=0)"
study = "study.sqlite3"
[solver.per_operator."inpaint-box"]
sigma = 2.0
[solver.per_operator."inpaint-box".tuned]
fields = ["sigma"]
image_set = "IMAGE_SET"
ids = IDS
seeds = [0, 1]
budget = 8
objective = "lpips"
best = 0.12
best_se = 0.01
trials = 8
pruned = 2
failed = 1
sampler = "TPESampler(seed=0)"
study = "tune/study.sqlite3"
"""


def _tuned_suite(tmp_path: Path, image_set: str, ids: list[str]) -> tuple[Path, dict[str, Any]]:
    """A suite as `bench tune` writes it (solver-level and per-operator provenance, every key), and the
    per-operator provenance as parsed from it."""
    text = TUNED_SUITE.replace("IMAGE_SET", image_set).replace("IDS", json.dumps(ids))
    suite = tmp_path / "tuned.toml"
    suite.write_text(text)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib  # type: ignore[no-redef]
    return suite, tomllib.loads(text)["solver"][0]


@pytest.mark.parametrize("image_set, ids, warned", [
    ("fashion32-test", IDS[:2], True),  # tuned on exactly the images this run evaluates on
    ("fashion32-test", ["099-pullover"], False),  # the same set, other images
    ("fashion32-val", IDS[:2], False),  # another split: held out
], ids=["tuned-on-these-images", "other-ids", "other-split"])
def test_a_suites_tuned_tables_go_to_run_json_as_written_and_warn_where_they_saw_the_images(
        tmp_path: Path, image_set: str, ids: list[str], warned: bool) -> None:
    suite, table = _tuned_suite(tmp_path, image_set, ids)
    out = tmp_path / "run"
    done = CliRunner().invoke(cli, ["run", "--config", str(suite), "--out", str(out), "--no-progress"])
    assert done.exit_code == 0, done.output
    solver = json.loads((out / "run.json").read_text())["config"]["solvers"][0]
    assert solver["tuned"] == table["tuned"]  # every key as written: the round trip loses nothing
    assert solver["per_operator"] == {"inpaint-box": {"params": {"sigma": 2.0},
                                                      "tuned": table["per_operator"]["inpaint-box"]["tuned"]}}
    expected = ([f"warning: hole-fill on inpaint-box: sigma tuned on 2 of the 2 images this run evaluates on "
                 f"(fashion32-test); {NOT_HELD_OUT}"] if warned else [])
    assert [line for line in done.stderr.splitlines() if line.startswith("warning: ")] == expected
    again = CliRunner().invoke(cli, ["table", str(out)])
    assert [line for line in again.stderr.splitlines() if line.startswith("warning: ")] == expected
