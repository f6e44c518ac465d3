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


def test_served_examples_join_the_training_side_of_training_listeners_only(tiny_features, tiny_labels):
    """The closed loop's served slates are added on top of the usual sample, up to the asked
    number, never from held-out listeners; the rest is split exactly as without them."""
    import polars as pl

    p = tiny_params(reward_model__max_train_examples=4000, reward_model__max_test_examples=3000)
    rp, lp = p.reward_model, p.label
    weights = fixed_weights(lp.composite.fixed, lp)
    everything = D.load_examples(tiny_features, tiny_labels, rp.targets.midterm, weights)
    # the tiny log has one policy: call its last days' slates another policy's, as a loop round's are
    last_days = pl.col("day") >= everything["day"].max() - 2
    frame = everything.with_columns(policy_id=pl.when(last_days).then(7).otherwise(pl.col("policy_id")))
    served_ids = frame.filter(last_days & ~D.held_out_users(rp))["event_id"]

    got = D._with_served(frame, rp, D.ServedExamples((7,), 1500))
    assert got.served == 1500 < len(served_ids)
    in_train = got.train.filter(pl.col("event_id").is_in(served_ids.implode()))
    assert in_train.height == 1500
    assert got.train.filter(D.held_out_users(rp)).height == 0
    rest = D.split(frame.filter(~last_days | D.held_out_users(rp)), rp)
    assert_frame_equal(got.test, rest.test.drop("policy_id"), check_exact=True)
    assert got.train.height == rest.train.height + 1500

    none_asked = D._with_served(frame, rp, D.ServedExamples((7,), 0))
    assert none_asked.served == 0 and none_asked.train.height == rest.train.height
