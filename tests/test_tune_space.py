"""bench tune's search space: what each solver declares, `--space` and its one-line errors, the rungs, the
TOML writer. Pure functions: no run, no optuna study."""
from __future__ import annotations

import math

import pytest

from ipbench.errors import UsageError
from ipbench.params import coerce
from ipbench.solvers import SOLVERS
from ipbench.tuning.rungs import plan
from ipbench.tuning.space import SpaceOption, declared, from_option, options_by_entry, solver_space
from ipbench.tuning.toml_out import assignment

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

# every diffusion solver with a step size, weight or rule to choose, and the classical baselines with one
MUST_DECLARE = {"dps": {"zeta"}, "daps": {"lr", "tau"}, "diffpir": {"lambda_", "zeta"}, "ddrm": {"eta", "eta_b"},
                "ddnm": {"eta"}, "pigdm": {"scale"}, "reddiff": {"lam", "lr"}, "score-ald": {"eps"},
                "pnp-flow": {"lr", "alpha"}, "ot-ode": {"s_start", "gamma"},
                "sdedit": {"t0", "guide"}, "repaint": {"noisy_y"}, "flowdps": {"step_size"}, "d-flow": {"lam", "alpha"},
                "deepinv-dps": {"weight"},
                "tikhonov": {"lam"}, "gaussian-filter": {"sigma", "source"}, "hole-fill": {"sigma"}}


def _params(name: str):
    return SOLVERS.get(name).params()


@pytest.mark.parametrize("name", sorted(MUST_DECLARE))
def test_the_declared_space_is_what_the_docs_say(name):
    assert set(declared(_params(name), name)) == MUST_DECLARE[name]


@pytest.mark.parametrize("name", list(SOLVERS))
def test_every_declared_bound_is_a_valid_value_and_no_step_count_is_declared(name):
    params = {p.name: p for p in _params(name)}
    for field, dim in declared(list(params.values()), name).items():
        p = params[field]
        assert not (p.range is not None and p.range.steps), f"{name}.{field}: a step count sets the cost"
        if dim.kind == "categorical":
            assert set(dim.choices) == set(p.choices)
            continue
        for end in (dim.low, dim.high):
            assert coerce(p, end, name) == end  # in the field's type and range
        assert dim.low < dim.high and (not dim.log or dim.low > 0)
        if dim.log:  # step sizes and weights span decades: at least one between the ends
            assert math.log10(dim.high / dim.low) >= 1


def _space(name: str, *texts: str, fixed: set[str] = frozenset()):
    options = [SpaceOption.parse(t) for t in texts]
    return solver_space(_params(name), name, options, set(fixed), f"solver {name}")


def test_space_narrows_widens_and_adds_fields():
    space, notes = _space("dps", "zeta=0.1:3:log", "eta=0:1")
    assert (space["zeta"].low, space["zeta"].high, space["zeta"].log) == (0.1, 3.0, True)
    assert space["eta"].kind == "float" and not space["eta"].log and notes == []
    space, _ = _space("dps", "normalize=grad,residual")
    assert space["normalize"].choices == ("grad", "residual")
    space, _ = _space("sdedit", "t0=100:400")
    assert space["t0"].kind == "int" and (space["t0"].low, space["t0"].high) == (100, 400)


def test_a_fixed_field_is_not_tuned_and_a_step_count_is_tuned_with_a_note():
    space, notes = _space("dps", "steps=5:20", fixed={"zeta"})
    assert set(space) == {"steps"}
    assert any("zeta: set by --param or the suite, so not tuned" in n for n in notes)
    assert any("dps.steps is a step count" in n for n in notes)


@pytest.mark.parametrize("text, message", [
    ("zeta", "expected FIELD=LOW:HIGH[:log]"),
    ("nope=1:2", "dps has no field 'nope'"),
    ("zeta=2:1", "LOW 2 must be below HIGH 1"),
    ("zeta=-1:2", "must be >= 0"),
    ("zeta=0:2:log", "a log scale needs LOW > 0"),
    ("zeta=0.1:2:cubic", "expected LOW:HIGH, LOW:HIGH:log or LOW:HIGH:linear"),
    ("zeta=a:b", "expected float"),
    ("zeta=1,2", "zeta is a number: give LOW:HIGH[:log]"),
    ("normalize=grad,wrong", "valid values are grad, residual"),
    ("normalize=grad", "at least two distinct values"),
    ("normalize=0:1", "normalize is not a number field"),
    ("eta=0:1.5", "must be in [0, 1]"),
])
def test_space_errors_are_one_line_and_name_the_option(text, message):
    with pytest.raises(UsageError) as caught:
        _space("dps", text)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("--space")


def test_a_space_for_a_fixed_field_is_refused():
    with pytest.raises(UsageError, match="dps.zeta is set by --param or the suite"):
        _space("dps", "zeta=0.1:1", fixed={"zeta"})


def test_space_targets():
    entries = [("dps", "dps", {"zeta", "eta"}), ("grad", "dps", {"zeta", "eta"}), ("ddnm", "ddnm", {"eta"})]
    by = options_by_entry([SpaceOption.parse("grad.zeta=1:2"), SpaceOption.parse("eta=0:0.5")], entries)
    assert [[o.text for o in mine] for mine in by] == [["eta=0:0.5"], ["grad.zeta=1:2", "eta=0:0.5"], ["eta=0:0.5"]]
    with pytest.raises(UsageError, match="'daps' is not a selected solver"):
        options_by_entry([SpaceOption.parse("daps.lr=0.1:1")], entries)
    with pytest.raises(UsageError, match="no selected solver .* has a field 'lr'"):
        options_by_entry([SpaceOption.parse("lr=0.1:1")], entries)


def test_from_option_keeps_int_fields_integers():
    p = {p.name: p for p in _params("sdedit")}["t0"]
    with pytest.raises(UsageError, match="expected int"):
        from_option(p, SpaceOption.parse("t0=10.5:20"))


@pytest.mark.parametrize("images, rungs, sizes", [(8, 3, [2, 4, 8]), (16, 3, [4, 8, 16]), (5, 3, [2, 3, 5]),
                                                  (3, 3, [2, 3]), (1, 3, [1]), (8, 1, [8])])
def test_rungs_cover_growing_spreads_of_the_images(images, rungs, sizes):
    rung_plan = plan(images, rungs)
    assert [rung_plan.images_after(j) for j in range(rung_plan.rungs)] == sizes
    covered = [i for shards in rung_plan.rung_shards() for k in shards for i in range(k, images, rung_plan.shards)]
    assert sorted(covered) == list(range(images))  # every image in exactly one rung's new shards
    assert rung_plan.positions(rung_plan.rungs - 1) == list(range(images))


def test_the_toml_writer_round_trips_through_tomllib():
    values = {"a": 0.1, "b": 1e-05, "c": 3.0, "d": 7, "e": True, "f": "dps \"x\"\n\u00e9", "g": [1, 2],
              "h": ["a", "b"], "i-j": 2.5e300, "k": 0.1 + 0.2}
    text = "\n".join(assignment(k, v) for k, v in values.items()) + "\n" + assignment("per op", None)
    parsed = tomllib.loads(text)
    assert parsed == {**values, "per op": "none"}


def test_a_validation_split_is_evaluated_on_the_test_split_of_its_origin(tmp_path):
    from ipbench.tuning.splits import counterpart
    from ipbench.tuning.suite_out import evaluation_set

    assert counterpart("fashion32-val", "test") == "fashion32-test"
    assert counterpart("fashion32-test", "val") == "fashion32-val"
    assert counterpart("fashion32-test", "test") == "fashion32-test"
    assert counterpart("photos", "test") is None  # declares no split
    assert counterpart(str(tmp_path), "test") is None  # a folder
    assert evaluation_set("fashion32-val") == "fashion32-test"
    assert evaluation_set(str(tmp_path)) == str(tmp_path)  # nothing held out to point at: bench run warns
