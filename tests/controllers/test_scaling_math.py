"""Autoscaling decisions (``controllers.scaling_math``): target tracking (both metric types,
tolerance, activation), step scaling (ECS's examples, rounding, MinAdjustmentMagnitude,
cooldowns, validation), several policies, stabilization on fake time, bounds, scale to and
from zero, failed reads, deployments, suspension, scheduled actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hatoba.controllers.scaling_math import (
    Decision,
    Fired,
    Inputs,
    Reading,
    ScalingState,
    adjusted,
    apply_actions,
    due_actions,
    evaluate,
    find_step,
    percent_change,
    step_errors,
    target_tracking_desired,
)
from hatoba.model.scaling import (
    ScalableTarget,
    ScalingPolicy,
    ScheduledAction,
    StepScalingConfiguration,
    TargetTrackingConfiguration,
)
from hatoba.model.schedule import parse_schedule

T0 = datetime(2026, 1, 1, tzinfo=UTC)
METRIC = {"redisList": {"url": "redis://127.0.0.1:6379/0", "key": "jobs"}}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def target(lo: int = 1, hi: int = 10, **fields: Any) -> ScalableTarget:
    return ScalableTarget(
        service_name="worker",
        min_capacity=lo,
        max_capacity=hi,
        created_at=T0,
        updated_at=T0,
        **fields,
    )


def tt(name: str = "backlog", value: float = 10, kind: str = "AverageValue", **cfg: Any):
    body = {"metric": METRIC, "targetValue": value, "metricType": kind} | cfg
    return ScalingPolicy.model_validate(
        {
            "policyName": name,
            "serviceName": "worker",
            "policyType": "TargetTrackingScaling",
            "targetTrackingConfiguration": body,
            "createdAt": T0,
            "updatedAt": T0,
        }
    )


def steps(*bounds: tuple[float | None, float | None, int]) -> list[dict[str, Any]]:
    return [
        {"metricIntervalLowerBound": lo, "metricIntervalUpperBound": hi, "scalingAdjustment": n}
        for lo, hi, n in bounds
    ]


def step_cfg(threshold: float, op: str, adjustments: list[dict[str, Any]], **cfg: Any):
    body = {
        "metric": METRIC,
        "threshold": threshold,
        "comparisonOperator": op,
        "stepAdjustments": adjustments,
    }
    return StepScalingConfiguration.model_validate(body | cfg)


def step(name: str, cfg: StepScalingConfiguration) -> ScalingPolicy:
    return ScalingPolicy(
        policy_name=name,
        service_name="worker",
        policy_type="StepScaling",
        step_scaling_configuration=cfg,
        created_at=T0,
        updated_at=T0,
    )


# ECS's documented example: threshold 50, +1 at 50-60, +2 at 60-70, +3 from 70 on
OUT = step_cfg(50, "GreaterThanOrEqualToThreshold", steps((0, 10, 1), (10, 20, 2), (20, None, 3)))
# and its scale-in twin: -1 at 30..20 (exclusive), -2 below
IN = step_cfg(30, "LessThanOrEqualToThreshold", steps((-10, 0, -1), (None, -10, -2)))


def decide(
    policies: list[ScalingPolicy],
    readings: dict[str, float | str | None],
    current: int,
    now: float = 0,
    state: ScalingState | None = None,
    tgt: ScalableTarget | None = None,
    deploying: bool = False,
) -> tuple[Decision, ScalingState]:
    def reading(v: float | str | None) -> Reading:
        if isinstance(v, str):
            return Reading(error=v)
        return Reading(value=v)

    inp = Inputs(
        target=tgt or target(),
        policies=policies,
        readings={k: reading(v) for k, v in readings.items()},
        current=current,
        now=at(now),
        deploying=deploying,
    )
    return evaluate(inp, state or ScalingState())


def cfg_tt(**kw: Any) -> TargetTrackingConfiguration:
    cfg = tt(**kw).target_tracking_configuration
    assert cfg is not None
    return cfg


# -- target tracking ------------------------------------------------------------------------
def test_value_type_is_ceil_current_times_ratio_with_a_tolerance_band() -> None:
    cfg = cfg_tt(value=50, kind="Value")
    assert target_tracking_desired(cfg, 4, 80) == 7  # ceil(6.4)
    assert target_tracking_desired(cfg, 4, 54) == 4  # ratio 1.08: within 10%
    assert target_tracking_desired(cfg, 4, 55) == 4  # 1.1: still within
    assert target_tracking_desired(cfg, 4, 56) == 5  # 1.12: ceil(4.48)
    assert target_tracking_desired(cfg, 4, 45) == 4  # 0.9
    assert target_tracking_desired(cfg, 4, 30) == 3  # ceil(2.4)
    assert target_tracking_desired(cfg, 10, 0) == 0


def test_value_type_ignores_float_noise() -> None:
    cfg = cfg_tt(value=0.35, kind="Value")
    assert target_tracking_desired(cfg, 3, 0.7) == 6  # not 7 from 6.000000000000001


def test_average_value_is_backlog_per_task() -> None:
    cfg = cfg_tt(value=100)
    assert target_tracking_desired(cfg, 1, 2000) == 20
    assert target_tracking_desired(cfg, 20, 2100) == 20  # 21 vs 20: within 10%
    assert target_tracking_desired(cfg, 20, 2300) == 23
    assert target_tracking_desired(cfg, 20, 150) == 2
    assert target_tracking_desired(cfg, 3, 0) == 0


def test_from_zero_only_above_the_activation_value() -> None:
    backlog = cfg_tt(value=10, activationValue=5)
    assert target_tracking_desired(backlog, 0, 0) == 0
    assert target_tracking_desired(backlog, 0, 5) == 0  # at the activation value: not above
    assert target_tracking_desired(backlog, 0, 6) == 1
    assert target_tracking_desired(backlog, 0, 95) == 10  # straight to the backlog's count
    utilization = cfg_tt(value=50, kind="Value")
    assert target_tracking_desired(utilization, 0, 80) == 1  # 0 x anything: one to start


def test_target_tracking_scales_out_at_once() -> None:
    d, _ = decide([tt()], {"backlog": 200}, current=1)
    assert (d.desired, d.policy, d.metric_value) == (10, "backlog", 200)
    assert d.changed and "policy backlog" in d.reason


# -- stabilization (fake time: seconds after T0) ----------------------------------------------
def test_scale_in_waits_one_window_from_the_first_evaluation() -> None:
    p = [tt(scaleInStabilizationSeconds=300)]
    d, s = decide(p, {"backlog": 20}, current=8, now=0)
    assert d.desired == 8 and "stabilization" in d.reason
    d, s = decide(p, {"backlog": 20}, current=8, now=299, state=s)
    assert d.desired == 8
    d, s = decide(p, {"backlog": 20}, current=8, now=300, state=s)
    assert d.desired == 2 and d.policy == "backlog"


def test_scale_in_uses_the_highest_recommendation_within_the_window() -> None:
    p = [tt(scaleInStabilizationSeconds=300)]
    s = ScalingState(recommendations={"backlog": ((at(0), 8), (at(100), 5), (at(200), 6))})
    d, s = decide(p, {"backlog": 40}, current=10, now=350, state=s)
    assert d.desired == 6  # at(0) left the window; 6 is the highest since
    assert "highest within the stabilization window" in d.reason
    d, s = decide(p, {"backlog": 40}, current=6, now=501, state=s)
    assert d.desired == 4


def test_a_spike_scales_out_at_once_and_holds_the_count_for_a_window() -> None:
    p = [tt(scaleInStabilizationSeconds=60)]
    d, s = decide(p, {"backlog": 10}, current=1, now=0)
    d, s = decide(p, {"backlog": 100}, current=1, now=10, state=s)
    assert d.desired == 10
    d, s = decide(p, {"backlog": 10}, current=10, now=20, state=s)
    assert d.desired == 10  # the spike at t=10 is in the window
    d, s = decide(p, {"backlog": 10}, current=10, now=70, state=s)
    assert d.desired == 1


def test_zero_window_scales_in_immediately() -> None:
    d, _ = decide([tt(scaleInStabilizationSeconds=0)], {"backlog": 20}, current=8)
    assert d.desired == 2


# -- step scaling -----------------------------------------------------------------------------
def test_step_intervals_follow_ecs_inclusivity() -> None:
    pick = lambda cfg, m: (s := find_step(cfg, m)) and s.scaling_adjustment  # noqa: E731
    assert pick(OUT, 50) == 1  # lower bound inclusive above the threshold
    assert pick(OUT, 59.9) == 1
    assert pick(OUT, 60) == 2
    assert pick(OUT, 70) == 3
    assert pick(OUT, 1e9) == 3
    assert pick(IN, 30) == -1  # upper bound inclusive below the threshold
    assert pick(IN, 20.5) == -1
    assert pick(IN, 20) == -2
    assert pick(IN, -5) == -2


def test_step_policy_acts_only_while_its_alarm_is_breached() -> None:
    d, _ = decide([step("out", OUT)], {"out": 49}, current=4)
    assert not d.changed and d.votes[0].desired is None
    d, _ = decide([step("out", OUT)], {"out": 65}, current=4)
    assert (d.desired, d.policy) == (6, "out")
    d, _ = decide([step("in", IN)], {"in": 10}, current=4)
    assert d.desired == 2


@pytest.mark.parametrize(
    ("current", "percent", "magnitude", "change"),
    [
        (10, 25, None, 2),  # 2.5 rounds down
        (3, 25, None, 1),  # 0.75 becomes 1
        (3, -25, None, -1),  # -0.75 becomes -1
        (10, -67, None, -6),  # -6.7 rounds up (toward zero)
        (7, 100, None, 7),
        (4, 25, 2, 2),  # ECS's MinAdjustmentMagnitude example: 25% of 4 is 1, scaled by 2
        (40, 25, 2, 10),  # above the magnitude: as computed
        (4, -25, 2, -2),
        (0, 50, None, 0),
        (0, 50, 2, 2),
    ],
)
def test_percent_change_rounding(current: int, percent: int, magnitude, change: int) -> None:
    assert percent_change(current, percent, magnitude) == change


def test_adjustment_types() -> None:
    change = step_cfg(0, "GreaterThanThreshold", steps((0, None, 3)))
    exact = step_cfg(0, "GreaterThanThreshold", steps((0, None, 3)), adjustmentType="ExactCapacity")
    pct = step_cfg(
        0,
        "GreaterThanThreshold",
        steps((0, None, -50)),
        adjustmentType="PercentChangeInCapacity",
    )
    assert adjusted(change, 4, 3) == 7
    assert adjusted(change, 1, -3) == 0  # never negative
    assert adjusted(exact, 9, 3) == 3
    assert adjusted(pct, 5, -50) == 3  # -2.5 -> -2


def test_step_scale_out_in_cooldown_counts_the_last_scale_out() -> None:
    p = [step("out", OUT)]
    d, s = decide(p, {"out": 55}, current=4, now=0)  # +1: 4 -> 5
    assert d.desired == 5
    d, s = decide(p, {"out": 55}, current=5, now=30, state=s)  # +1 again, in cooldown
    assert not d.changed  # 4 + 1 = 5: already there
    d, s = decide(p, {"out": 75}, current=5, now=60, state=s)  # a larger step: +3 from 4
    assert d.desired == 7 and "cooldown" in d.reason
    d, s = decide(p, {"out": 75}, current=7, now=301, state=s)  # restarted at t=60
    assert not d.changed
    d, s = decide(p, {"out": 75}, current=7, now=360, state=s)  # cooldown over: from 7
    assert d.desired == 10


def test_step_scale_in_waits_for_its_cooldown() -> None:
    p = [step("in", IN)]
    d, s = decide(p, {"in": 25}, current=6, now=0)
    assert d.desired == 5
    d, s = decide(p, {"in": 25}, current=5, now=100, state=s)
    assert not d.changed
    d, s = decide(p, {"in": 25}, current=5, now=300, state=s)
    assert d.desired == 4


def test_step_cooldown_is_configurable() -> None:
    cfg = OUT.model_copy(update={"cooldown": 10})
    d, s = decide([step("out", cfg)], {"out": 55}, current=4, now=0)
    d, s = decide([step("out", cfg)], {"out": 55}, current=5, now=10, state=s)
    assert d.desired == 6


# -- step validation ----------------------------------------------------------------------------
def errors_of(*bounds, op: str = "GreaterThanOrEqualToThreshold", **cfg: Any) -> list[str]:
    return [str(e) for e in step_errors(step_cfg(50, op, steps(*bounds), **cfg), "step")]


def test_valid_step_adjustments_pass() -> None:
    assert step_errors(OUT, "s") == []
    assert step_errors(IN, "s") == []
    assert errors_of((None, None, 1)) != []  # both unbounded in one step


def test_step_validation_names_the_field() -> None:
    assert errors_of((0, 10, 1), (5, None, 2)) == [
        "step.stepAdjustments[1].metricIntervalLowerBound: overlaps step 0"
    ]
    assert errors_of((0, 10, 1), (20, None, 2)) == [
        "step.stepAdjustments[1].metricIntervalLowerBound: leaves a gap after step 0 "
        "(which ends at 10)"
    ]
    assert errors_of((0, None, 1), (10, None, 2))[0].startswith(
        "step.stepAdjustments[1].metricIntervalUpperBound: only one step may have an unbounded"
    )
    assert errors_of((None, 0, 1), (None, 10, 2), op="LessThanThreshold")[0].startswith(
        "step.stepAdjustments[1].metricIntervalLowerBound: only one step"
    )
    assert errors_of((10, 5, 1)) == [
        "step.stepAdjustments[0].metricIntervalUpperBound: must be above "
        "metricIntervalLowerBound (10)"
    ]
    assert errors_of((10, None, 1)) == [
        "step.stepAdjustments[0].metricIntervalLowerBound: the alarm fires at the threshold: "
        "the steps must start at 0, not 10"
    ]
    assert errors_of((0, 10, 1)) == [
        "step.stepAdjustments[0].metricIntervalUpperBound: the last step must be unbounded "
        "above (breaches can be any size)"
    ]
    assert errors_of((-10, 0, -1), op="LessThanThreshold") == [
        "step.stepAdjustments[0].metricIntervalLowerBound: the first step must be unbounded "
        "below (breaches can be any size)"
    ]


def test_step_validation_of_adjustments() -> None:
    assert errors_of((0, None, -1), adjustmentType="ExactCapacity") == [
        "step.stepAdjustments[0].scalingAdjustment: ExactCapacity must not be negative"
    ]
    assert errors_of((0, None, -101), adjustmentType="PercentChangeInCapacity") == [
        "step.stepAdjustments[0].scalingAdjustment: cannot remove more than 100 percent"
    ]
    assert errors_of((0, None, 1), minAdjustmentMagnitude=2) == [
        "step.minAdjustmentMagnitude: applies only to PercentChangeInCapacity"
    ]


# -- several policies -----------------------------------------------------------------------
def test_out_if_any_says_out_and_the_largest_wins() -> None:
    p = [tt("a", value=10), tt("b", value=10)]
    d, _ = decide(p, {"a": 50, "b": 80}, current=4)
    assert (d.desired, d.policy, d.metric_value) == (8, "b", 80)
    d, _ = decide(p, {"a": 50, "b": 0}, current=4)  # b says in, a says out: out
    assert (d.desired, d.policy) == (5, "a")


def test_in_only_if_all_say_in_and_the_smallest_reduction_wins() -> None:
    p = [
        tt("a", value=10, scaleInStabilizationSeconds=0),
        tt("b", value=10, scaleInStabilizationSeconds=0),
    ]
    d, _ = decide(p, {"a": 20, "b": 40}, current=8)
    assert (d.desired, d.policy) == (4, "b")
    d, _ = decide(p, {"a": 20, "b": 80}, current=8)  # b holds: no scale-in
    assert not d.changed


def test_a_step_policy_out_of_alarm_does_not_block_scale_in() -> None:
    p = [step("out", OUT), tt("a", value=10, scaleInStabilizationSeconds=0)]
    d, _ = decide(p, {"out": 10, "a": 20}, current=8)
    assert (d.desired, d.policy) == (2, "a")


def test_disable_scale_in_policy_neither_scales_in_nor_blocks_others() -> None:
    lazy = tt("lazy", value=10, disableScaleIn=True, scaleInStabilizationSeconds=0)
    d, _ = decide([lazy], {"lazy": 10}, current=8)
    assert not d.changed
    busy = tt("busy", value=10, scaleInStabilizationSeconds=0)
    d, _ = decide([lazy, busy], {"lazy": 10, "busy": 30}, current=8)
    assert (d.desired, d.policy) == (3, "busy")
    d, _ = decide([lazy], {"lazy": 200}, current=8)
    assert d.desired == 10  # out as usual (clamped to max)


# -- bounds, zero, failures, deployments, suspension --------------------------------------------
def test_clamped_to_min_and_max() -> None:
    d, _ = decide([tt()], {"backlog": 10_000}, current=2, tgt=target(1, 20))
    assert (d.desired, d.policy) == (20, "backlog")
    assert d.reason.endswith("bounded by maxCapacity 20")
    d, _ = decide([], {}, current=0, tgt=target(3, 20))
    assert (d.desired, d.reason) == (3, "at minCapacity 3")
    d, _ = decide([], {}, current=30, tgt=target(3, 20))
    assert d.desired == 20
    d, _ = decide([tt(scaleInStabilizationSeconds=0)], {"backlog": 0}, current=5, tgt=target(2, 9))
    assert d.desired == 2


def test_failed_read_keeps_the_count_and_blocks_scale_in() -> None:
    p = [tt("a", scaleInStabilizationSeconds=0), tt("b", scaleInStabilizationSeconds=0)]
    d, _ = decide(p, {"a": "redis: connection refused", "b": 0}, current=5, tgt=target(0, 10))
    assert not d.changed
    assert d.votes[0].failed and "connection refused" in d.votes[0].reason
    d, _ = decide(p, {"a": "timeout", "b": 100}, current=5)  # the other may still scale out
    assert (d.desired, d.policy) == (10, "b")
    d, _ = decide(p, {"a": None, "b": 0}, current=5)  # no reading yet: the same
    assert not d.changed


def test_never_to_zero_on_a_failed_read_even_after_the_cooldown() -> None:
    p = [tt("a", scaleInStabilizationSeconds=0), step("in", IN.model_copy(update={"cooldown": 0}))]
    state = ScalingState(active_at=at(-10_000), scaled_at=at(-10_000))
    tgt = target(0, 10, scale_to_zero_cooldown_seconds=0)
    d, _ = decide(p, {"a": "boom", "in": 0}, current=1, state=state, tgt=tgt)
    assert not d.changed


def test_scale_to_zero_waits_for_its_cooldown_since_last_activity() -> None:
    p = [tt(scaleInStabilizationSeconds=0)]
    tgt = target(0, 10, scale_to_zero_cooldown_seconds=300)
    d, s = decide(p, {"backlog": 0}, current=1, now=0, tgt=tgt)
    assert not d.changed and "scale-to-zero cooldown" in d.reason
    d, s = decide(p, {"backlog": 3}, current=1, now=200, tgt=tgt, state=s)  # work: resets
    d, s = decide(p, {"backlog": 0}, current=1, now=499, tgt=tgt, state=s)
    assert not d.changed
    d, s = decide(p, {"backlog": 0}, current=1, now=500, tgt=tgt, state=s)
    assert d.desired == 0
    d, s = decide(p, {"backlog": 0}, current=0, now=600, tgt=tgt, state=s)
    assert not d.changed
    d, s = decide(p, {"backlog": 1}, current=0, now=601, tgt=tgt, state=s)
    assert d.desired == 1  # above activation (0): wakes at once


def test_scale_to_zero_from_many_tasks_stops_at_one_until_the_cooldown() -> None:
    p = [tt(scaleInStabilizationSeconds=0)]
    tgt = target(0, 10, scale_to_zero_cooldown_seconds=60)
    state = ScalingState(active_at=at(0), scaled_at=at(0))
    d, s = decide(p, {"backlog": 0}, current=6, now=10, tgt=tgt, state=state)
    assert d.desired == 1
    d, s = decide(p, {"backlog": 0}, current=1, now=50, tgt=tgt, state=s)
    assert not d.changed  # the activity at t=10 restarted the wait
    d, s = decide(p, {"backlog": 0}, current=1, now=70, tgt=tgt, state=s)
    assert d.desired == 0


def test_max_zero_forces_zero() -> None:
    d, _ = decide([tt()], {"backlog": "down"}, current=3, tgt=target(0, 0))
    assert d.desired == 0


def test_deployment_suspends_scale_in_not_scale_out() -> None:
    p = [tt(scaleInStabilizationSeconds=0)]
    d, _ = decide(p, {"backlog": 10}, current=5, deploying=True)
    assert not d.changed and "deployment" in d.reason
    d, _ = decide(p, {"backlog": 80}, current=5, deploying=True)
    assert d.desired == 8


def test_suspended_state() -> None:
    p = [tt(scaleInStabilizationSeconds=0)]
    no_out = target(suspended_state={"dynamicScalingOutSuspended": True})
    no_in = target(suspended_state={"dynamicScalingInSuspended": True})
    assert not decide(p, {"backlog": 80}, current=5, tgt=no_out)[0].changed
    assert decide(p, {"backlog": 10}, current=5, tgt=no_out)[0].desired == 1
    assert not decide(p, {"backlog": 10}, current=5, tgt=no_in)[0].changed
    assert decide(p, {"backlog": 80}, current=5, tgt=no_in)[0].desired == 8
    assert (
        decide([], {}, current=0, tgt=target(2, 5, suspended_state=no_out.suspended_state))[
            0
        ].desired
        == 2
    )  # bounds still hold


def test_state_forgets_deleted_policies() -> None:
    _, s = decide([step("out", OUT)], {"out": 55}, current=4)
    assert "out" in s.cooldowns
    _, s = decide([], {}, current=5, state=s)
    assert s.cooldowns == {} and s.recommendations == {}


# -- scheduled actions ------------------------------------------------------------------------
def action(name: str, schedule: str, tz: str = "UTC", **fields: Any) -> ScheduledAction:
    return ScheduledAction(
        scheduled_action_name=name,
        service_name="worker",
        schedule=schedule,
        timezone=tz,
        created_at=T0,
        updated_at=T0,
        **fields,
    )


def next_fire(a: ScheduledAction, after: datetime) -> datetime | None:
    return parse_schedule(a.schedule, a.timezone).next_after(after)


def test_scheduled_actions_fire_in_their_time_zone_once() -> None:
    morning = action("morning", "cron(0 9 * * ? *)", "Asia/Tokyo", min_capacity=5)  # 00:00Z
    evening = action("evening", "cron(0 18 * * ? *)", "Asia/Tokyo", min_capacity=1)  # 09:00Z
    nine = T0 + timedelta(hours=9)
    assert due_actions([morning, evening], {}, nine - timedelta(seconds=1), next_fire) == []
    assert due_actions([morning, evening], {}, nine, next_fire) == [Fired(evening, nine)]
    day = T0 + timedelta(days=1)
    fired = {"evening": nine}
    assert due_actions([morning, evening], fired, day, next_fire) == [Fired(morning, day)]
    fired = {"morning": day, "evening": nine}
    assert due_actions([morning, evening], fired, day + timedelta(hours=1), next_fire) == []
    later = day + timedelta(days=3, hours=10)  # missed runs collapse into one each
    due = due_actions([morning, evening], fired, later, next_fire)
    assert [f.action.scheduled_action_name for f in due] == ["morning", "evening"]
    applied = apply_actions(target(2, 10), due)
    assert applied.min_capacity == 1  # the later one wins
    assert applied.scheduled_fired["evening"] == day + timedelta(days=3, hours=9)


def test_scheduled_actions_respect_start_and_end() -> None:
    start, end = T0 + timedelta(days=2), T0 + timedelta(days=4)
    a = action("a", "rate(1 day)", max_capacity=3, start_time=start, end_time=end)
    assert due_actions([a], {}, T0 + timedelta(days=1), next_fire) == []
    assert due_actions([a], {}, start, next_fire) == [Fired(a, start)]
    assert due_actions([a], {}, end + timedelta(seconds=1), next_fire) == []


def test_scheduled_bounds_move_each_other() -> None:
    up = Fired(action("up", "rate(1 day)", min_capacity=15), T0)
    assert (
        apply_actions(target(1, 10), [up]).min_capacity,
        apply_actions(target(1, 10), [up]).max_capacity,
    ) == (15, 15)
    down = Fired(action("down", "rate(1 day)", max_capacity=2), T0)
    got = apply_actions(target(5, 10), [down])
    assert (got.min_capacity, got.max_capacity) == (2, 2)
    both = Fired(action("both", "rate(1 day)", min_capacity=0, max_capacity=4), T0)
    got = apply_actions(target(5, 10), [both])
    assert (got.min_capacity, got.max_capacity) == (0, 4)
