"""Funnel specs: SalesCRM's shipped spec reproduces the funnel the code had; bad specs name file and key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nextbest.data.funnel_spec import default_funnel_spec, load_funnel_spec
from nextbest.errors import DataError
from nextbest.sim.journeys import journeys_from_frame

SHIPPED = default_funnel_spec().source


def test_the_shipped_salescrm_spec() -> None:
    spec = default_funnel_spec()
    assert spec.step_names == ("msg1", "msg2", "msg3", "first_call", "demo", "survey", "signup", "manager",
                               "subscribed")  # fmt: skip
    assert spec.key_steps == ("first_call", "demo", "survey", "signup", "manager")
    assert spec.action_names == ("email", "call", "demo", "survey", "wait", "manager")
    assert spec.action_costs.tolist() == [1.0, 5.0, 10.0, 2.0, 0.0, 20.0]
    assert spec.conversion_step == "subscribed" and spec.conversion_value == 1000.0
    assert spec.dropout_values == {"not interested", "do not contact"}
    assert [s.name for s in spec.steps if s.taken_by == "lead"] == ["signup", "subscribed"]


def test_reached_steps_follow_the_spec(prepared_crm) -> None:
    """The spec-driven reader equals the rules written out by hand: status levels, filled dates, stage values."""
    frame = prepared_crm.train
    journeys = journeys_from_frame(frame)
    level = frame["status"].map({"1st message": 1, "2nd message": 2, "3rd message": 3}).fillna(0).to_numpy()
    by_hand = [level >= 1, level >= 2, level >= 3] + [frame[c].notna().to_numpy() for c in
               ("first_call", "demo", "survey", "signup", "manager", "subscribed")]  # fmt: skip
    np.testing.assert_array_equal(journeys.reached, np.column_stack(by_hand))
    dropped = frame["stage"].isin(["not interested", "do not contact"]).to_numpy() & ~by_hand[-1]
    np.testing.assert_array_equal(journeys.dropped, dropped)
    with pytest.raises(DataError, match=r"lacks the columns \['demo'\]"):
        journeys_from_frame(frame.drop(columns="demo"))


def _spec(tmp_path: Path, old: str, new: str) -> Path:
    text = Path(SHIPPED).read_text()
    assert old in text
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('cost = 5.0', 'cost = -5.0', r"actions\[1\].cost: must be a number >= 0"),
        ('offers = ["demo"]', 'offers = ["webinar"]', r"actions\[2\].offers: unknown steps \['webinar'\]"),
        ('taken_by = "lead"', 'taken_by = "robot"', r"steps\[6\].taken_by: must be one of"),
        ('reached = { date = "demo" }', 'reached = { when = "demo" }', r"steps\[4\].reached: give exactly one of"),
        ('step = "subscribed"', 'step = "paid"', r"conversion.step: 'paid' is not one of the steps"),
        ('value = 1000.0', 'value = true', r"conversion.value: must be a positive number"),
        ('name = "salescrm"', 'name = "salescrm"\ncolour = "red"', r"the spec: unknown keys \['colour'\]"),
        ('name = "call"', 'name = "email"', r"actions: names repeated: \['email'\]"),
        ('at_least = 2,', 'at_least = 7,', r"steps\[1\].reached: levels must map"),
        ('[dropout]', '[dropout', "not a TOML file"),
    ],
)
def test_bad_specs_name_the_file_and_the_key(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _spec(tmp_path, old, new)
    with pytest.raises(DataError, match=message) as error:
        load_funnel_spec(path)
    assert str(path) in str(error.value)


def test_a_spec_with_other_steps_reads_an_export(tmp_path: Path) -> None:
    """A differently shaped funnel (B2B: MQL, SQL, trial by a value column) is read from its spec alone."""
    spec_file = tmp_path / "b2b.toml"
    spec_file.write_text('''
name = "b2b"
covariates = ["industry"]
[conversion]
step = "paid"
value = 5000
[dropout]
column = "status"
values = ["lost"]
[[actions]]
name = "nurture"
cost = 0.5
offers = ["mql"]
[[actions]]
name = "wait"
cost = 0
offers = []
[[steps]]
name = "mql"
taken_by = "company"
reached = { date = "mql_date" }
[[steps]]
name = "trial"
taken_by = "lead"
key = true
reached = { column = "plan", values = ["trial", "paid"] }
[[steps]]
name = "paid"
taken_by = "lead"
reached = { column = "plan", values = ["paid"] }
''')
    spec = load_funnel_spec(spec_file)
    export = pd.DataFrame({"mql_date": ["2024-01-02", None, "2024-02-01"], "plan": ["trial", None, "paid"],
                           "status": ["open", "lost", "lost"], "industry": ["a", "b", "a"]})  # fmt: skip
    reached, dropped = spec.reached(export)
    assert reached.tolist() == [[True, True, False], [False, False, False], [True, True, True]]
    assert dropped.tolist() == [False, True, False]  # the paying lead did not drop out


def test_targets_and_bonuses_are_part_of_the_spec(tmp_path: Path) -> None:
    spec = default_funnel_spec()
    assert spec.targets["subscription_factor_vs_random"] == 2.3 and spec.targets["roi"] == 0.0
    assert {s.name: s.bonus for s in spec.steps if s.bonus} == {"first_call": 15.0, "demo": 12.0, "survey": 8.0,
                                                                 "signup": 20.0, "manager": 10.0}  # fmt: skip
    text = Path(spec.source).read_text().replace("roi = 0.0", "roi = \"high\"")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(DataError, match=r"bad\.toml: targets\.roi: must be a number"):
        load_funnel_spec(bad)
    bad.write_text(Path(spec.source).read_text().replace("roi = 0.0", "roi_max = 1.0"))
    with pytest.raises(DataError, match=r"bad\.toml: targets: unknown keys \['roi_max'\]"):
        load_funnel_spec(bad)
