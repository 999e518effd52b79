"""One --param grammar for --solver/--op selections and TOML suites, and one way from the CLI to a RunSpec."""
from __future__ import annotations

from pathlib import Path

import pytest

from ipbench.benchmark.spec import ParamAssignment, build_spec, load_suite, make_spec
from ipbench.errors import UsageError

SUITE = """
model = "gaussian"
seeds = [3]
[[operator]]
name = "inpaint"
label = "box"
[[operator]]
name = "denoise"
label = "noisy"
sigma_y = 0.1
[[solver]]
name = "dps"
label = "DPS half"
zeta = 0.5
[[solver]]
name = "hole-fill"
"""


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(SUITE)
    return path


def test_assignment_parses_target_name_and_value() -> None:
    assert ParamAssignment.parse("dps.zeta=0.5") == ParamAssignment("dps", "zeta", "0.5", "dps.zeta=0.5")
    assert ParamAssignment.parse("sigma_y=0.1").target == ""
    assert ParamAssignment.parse("DPS half.zeta=1").target == "DPS half"  # a label may hold spaces
    for bad in ("zeta", "=1", "dps.=1"):
        with pytest.raises(UsageError, match="expected NAME=VALUE"):
            ParamAssignment.parse(bad)


@pytest.mark.parametrize("target", ["inpaint", "inpaint-box"])  # an alias and the registered name
def test_cli_selection_takes_names_and_aliases_as_targets(target: str) -> None:
    spec = build_spec(["dps"], ["inpaint"], [f"{target}.side=0.25", "dps.zeta=0.5"])
    assert spec.operators[0].params["side"] == 0.25 and spec.solvers[0].solver.zeta == 0.5


@pytest.mark.parametrize("target", ["DPS half", "dps"])  # the suite's label, the solver's name
def test_suite_takes_labels_and_names_as_targets(suite: Path, target: str) -> None:
    spec = make_spec(suite, [], [], [f"{target}.zeta=0.25", "box.side=0.25"])
    assert spec.solvers[0].solver.zeta == 0.25 and spec.solvers[0].label == "DPS half"
    assert spec.operators[0].params["side"] == 0.25 and spec.operators[0].label == "box"
    assert spec.operators[1].params["sigma_y"] == 0.1  # untouched: the suite's own value


def test_alias_target_reaches_a_relabelled_suite_operator(suite: Path) -> None:
    spec = make_spec(suite, [], [], ["inpaint.side=0.3"])  # 'inpaint' is inpaint-box's alias; its label is 'box'
    assert spec.operators[0].params["side"] == 0.3


def test_untargeted_value_goes_to_everyone_who_has_it(suite: Path) -> None:
    spec = make_spec(suite, [], [], ["sigma_y=0.05"])
    assert [o.params["sigma_y"] for o in spec.operators] == [0.05, 0.05]
    spec = build_spec(["dps", "hole-fill"], ["inpaint", "denoise"], ["sigma_y=0.05"])
    assert [o.params["sigma_y"] for o in spec.operators] == [0.05, 0.05]


@pytest.mark.parametrize("params, message", [
    (["tweedie.t=3"], "'tweedie' is not a selected solver or operator (DPS half, hole-fill, box, noisy)"),
    (["zeta2=1"], "no selected solver or operator has a parameter 'zeta2'"),
    (["box.zeta=1"], "has no parameter 'zeta'"),
    (["dps.zeta=big"], "expected float"),
])
def test_suite_and_cli_share_the_errors(suite: Path, params: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_spec(suite, [], [], params)


def test_options_override_the_suite_without_touching_the_rest(suite: Path) -> None:
    spec = make_spec(suite, [], [], [], model="fashion32", seeds=[0, 1], num_images=2, images=None, precision="bf16")
    assert (spec.model, spec.seeds, spec.num_images, spec.precision) == ("fashion32", [0, 1], 2, "bf16")
    assert make_spec(suite, [], [], [], model=None, seeds=None).model == "gaussian"
    with pytest.raises(UsageError, match="--config sets the solvers and operators"):
        make_spec(suite, ["dps"], [], [])


def test_suite_precision_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('precision = "fp16"\n' + SUITE)
    with pytest.raises(UsageError, match="precision = 'fp16'; valid: fp32, bf16"):
        make_spec(path, [], [], [])


def test_suite_seeding_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('seeding = "common"\n' + SUITE)
    spec = load_suite(path)
    assert spec.seeding == "common" and spec.config()["seeding"] == "common"
    assert "seeding" not in build_spec(["tweedie"], ["denoise"]).config()  # the default keeps old configs equal
    path.write_text('seeding = "shared"\n' + SUITE)
    with pytest.raises(UsageError, match="seeding = 'shared'; valid: independent, common"):
        load_suite(path)
