"""The reward model's lean split reader gives exactly the split of all examples."""

from __future__ import annotations

from polars.testing import assert_frame_equal

from components.reward import examples as D
from components.reward.composite import fixed_weights
from tests.conftest import tiny_params


def test_load_split_equals_the_split_of_every_example(tiny_features, tiny_labels):
    # caps below the tiny world's rows, so both seeded samples (rows, whole sessions) are drawn
    p = tiny_params(reward_model__max_train_examples=4000, reward_model__max_test_examples=3000)
    rp, lp = p.reward_model, p.label
    weights = fixed_weights(lp.composite.fixed, lp)
    target = rp.targets.midterm
    everything = D.load_examples(tiny_features, tiny_labels, target, weights)
    expected = D.split(everything, rp)
    uncapped = D.split(everything, tiny_params().reward_model)
    assert expected.train.height == 4000 and expected.test.height < uncapped.test.height
    got = D.load_split(tiny_features, tiny_labels, target, weights, rp)
    assert got.split_day == expected.split_day
    assert_frame_equal(got.train, expected.train, check_exact=True)
    assert_frame_equal(got.test, expected.test, check_exact=True)
