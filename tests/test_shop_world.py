"""Shop world: exact message schema, reproducibility by seed, calibration targets, exact expected revenue."""

from __future__ import annotations

import numpy as np
import pytest

from nextbest.errors import NextbestError
from nextbest.sim.shop import World, world_from_config


@pytest.fixture(scope="module")
def world() -> World:
    return World(0, eval_customers=100_000)


def test_message_schema_is_exact(world: World) -> None:
    demographic, historic = world.messages(world.sample(50))
    assert len(demographic) == len(historic) == 50
    for demo, hist in zip(demographic, historic):
        assert list(demo) == ["uuid", "age", "man", "woman"]
        assert all(type(value) is int for value in demo.values())
        assert demo["man"] + demo["woman"] == 1 and 18 <= demo["age"] <= 80
        assert set(hist) == {"uuid", "products"} and hist["uuid"] == demo["uuid"]
        expected = [f"cat{j}" for j in range(100)] + [f"u{j}" for j in range(10)]
        assert list(hist["products"]) == expected
        assert all(type(value) is int and value in (0, 1) for value in hist["products"].values())


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b, c = World(5).training_set(2000), World(5).training_set(2000), World(6).training_set(2000)
    assert a[0].equals(b[0]) and a[1].equals(b[1])
    assert not a[0].equals(c[0])
    rebuilt = world_from_config(World(5).config.to_dict())
    assert rebuilt.training_set(2000)[0].equals(a[0])


def test_categories_are_correlated(world: World) -> None:
    cats = world.sample(20_000).cats.astype(float)
    corr = np.corrcoef(cats.T)
    off = corr[np.triu_indices_from(corr, 1)]
    assert np.nanmean(off) > 0.02 and np.nanmax(off) > 0.2


def test_calibration_targets(world: World) -> None:
    summary = world.summary()
    assert summary["original_vs_show_none"] == pytest.approx(-0.3, abs=0.05)
    assert summary["oracle_vs_original"] > 0.7
    assert summary["show_all"] < summary["show_none"]


def test_calibration_holds_for_another_seed() -> None:
    summary = World(11, eval_customers=100_000).summary()
    assert summary["original_vs_show_none"] == pytest.approx(-0.3, abs=0.05)
    assert summary["oracle_vs_original"] > 0.7


def test_expected_revenue_matches_monte_carlo(world: World) -> None:
    customers = world.evaluation_customers
    decisions = world.original_policy(customers)
    # revenue sd is about 15 $: pool 10 simulated sessions per customer (1e6 sessions), SE ~ 0.015 $
    draws = [world.simulate_revenue(customers, decisions, stream=100 + k) for k in range(10)]
    sampled = np.concatenate(draws)
    assert 13 < sampled.std() < 18
    exact = world.expected_revenue(decisions)
    assert abs(sampled.mean() - exact) < 4 * sampled.std() / np.sqrt(sampled.size)
    assert world.expected_revenue("original") == exact
    assert world.expected_revenue(world.original_policy) == exact


def test_training_set_layout(world: World) -> None:
    train, test = world.training_set(5000)
    assert len(train) + len(test) == 5000 and 0.1 < len(test) / 5000 < 0.3
    assert list(train.columns[:4]) == ["uuid", "age", "man", "woman"] and train.columns[-1] == "bought"
    assert set(train["bought"].unique()) == {0, 1}
    assert not set(train["uuid"]) & set(test["uuid"])


def test_bad_inputs(world: World) -> None:
    with pytest.raises(NextbestError):
        world.expected_revenue(np.ones(3))
    with pytest.raises(NextbestError):
        world.expected_revenue("sometimes")
    with pytest.raises(NextbestError):
        world.expected_revenue(np.full(len(world.evaluation_customers), 0.5))


def test_feed_styles_write_what_the_decoder_reads_back() -> None:
    """Clean: every flag once, as `messages`. Realistic: the example's gaps, repeats at the stated rates, and the
    decoder recovers the truth except where it must not (gaps imputed later, conflicts read as 1)."""
    import json

    from nextbest.data.feed import MISSING, FeedTally, MessageDecoder, flag_matrix
    from nextbest.models.targeting import FEATURES
    from nextbest.sim.shop import REALISTIC_FEED, FeedStyle, example_keys

    world = World(2)
    customers = world.sample(2000)
    demographic, historic = world.feed_messages(customers, FeedStyle(), np.random.default_rng(0))
    records = world.messages(customers)
    assert historic == [json.dumps(r).encode() for r in records[1]]
    assert demographic == [json.dumps(r).encode() for r in records[0]]

    _, raw = world.feed_messages(customers, REALISTIC_FEED, np.random.default_rng(0))
    assert raw == world.feed_messages(customers, REALISTIC_FEED, np.random.default_rng(0))[1]  # seeded
    decoder = MessageDecoder(FEATURES()[3:])
    halves = [decoder.historic(message) for message in raw]
    flags = flag_matrix(halves)
    truth = np.concatenate([customers.cats, customers.us], axis=1)
    names = FEATURES()[3:]
    gaps = [j for j, name in enumerate(names) if name not in set(example_keys())]
    assert [names[j] for j in gaps] == ["cat1", "cat4", "cat5", "cat9", "cat39", "cat92", "cat95", "cat99", "u7", "u8"]
    assert (flags[:, gaps] == MISSING).all()
    named = flags != MISSING
    assert abs(1 - named.sum() / (len(raw) * 100) - REALISTIC_FEED.missing_rate) < 0.002
    assert (flags[named] >= truth[named]).all()  # a conflict can only turn a 0 into a 1
    tally = FeedTally(names)
    tally.add(flags, halves)
    repeated, conflicting = tally.repeated.sum(), tally.conflicting.sum()
    assert abs(repeated / named.sum() - REALISTIC_FEED.repeat_rate) < 0.005
    assert abs(conflicting / repeated - REALISTIC_FEED.conflict_share) < 0.02
    flipped = (flags[named] != truth[named]).sum()
    assert 0 < flipped <= conflicting


def test_shop_messages_writes_the_feed_as_raw_lines(tmp_path, capsys, monkeypatch) -> None:
    from cli_helpers import run
    from nextbest.data.feed import HistoricHalf, MessageDecoder
    from nextbest.models.targeting import FEATURES

    code, out, err = run(capsys, monkeypatch, "shop", "messages", "--out", str(tmp_path), "--customers", "50")
    assert code == 0, err
    historic = (tmp_path / "historic.jsonl").read_bytes().splitlines()
    demographic = (tmp_path / "demographic.jsonl").read_bytes().splitlines()
    assert len(historic) == len(demographic) == 50
    decoder = MessageDecoder(FEATURES()[3:])
    halves = [decoder.historic(line) for line in historic]
    assert all(isinstance(half, HistoricHalf) for half in halves) and any(half.repeats for half in halves)
    code, _, err = run(capsys, monkeypatch, "shop", "messages", "--out", str(tmp_path), "--feed", "odd")
    assert code == 2 and "feed 'odd'" in err
