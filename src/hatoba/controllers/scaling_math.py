"""Autoscaling decisions as pure functions: a target, its policies, their latest metric
readings, the service's count and the time in; the count to set and why out, with the new
bookkeeping (recommendation history, step cooldowns). No I/O, no clock, no globals: the
caller keeps :class:`ScalingState` between evaluations.

Semantics (Application Auto Scaling, HPA and KEDA where each is the reference):

- target tracking, ``Value``: desired = ceil(current * metric / target), no change while
  metric / target is within the tolerance (10%) of 1; ``AverageValue``: desired =
  ceil(metric / target), no change while that is within the tolerance of the current count.
- scale-in only after the policy's stabilization window: the policy recommends the highest
  count it computed within the window (HPA), and a policy seen for the first time counts as
  having recommended the current count (so nothing scales in before one full window).
- step scaling: the alarm is "metric <comparison> threshold"; the step whose interval holds
  metric - threshold gives the adjustment (``ChangeInCapacity``, ``ExactCapacity``,
  ``PercentChangeInCapacity`` rounded toward zero except that |change| < 1 becomes 1, then
  raised to ``minAdjustmentMagnitude``). Cooldown: a scale-out during the policy's cooldown
  counts what its last scale-out added (it is computed from the count before it); a
  scale-in waits for the cooldown to end.
- several policies: out if any says out (the largest wins); in only if every policy that
  votes says in (the largest, i.e. the smallest reduction, wins). A policy whose metric
  could not be read votes to hold, so it blocks scale-in and never scales to zero; a step
  policy whose alarm is not breached and a ``disableScaleIn`` policy that would scale in do
  not vote.
- from 0, a target tracking policy asks for tasks only when its metric is above
  ``activationValue``; to 0 only after ``scaleToZeroCooldownSeconds`` since the last time a
  metric was above activation (or unreadable) and since the last scaling activity.
- a deployment in progress suspends scale-in, not scale-out; ``suspendedState`` drops votes
  by direction; the result is always clamped to [minCapacity, maxCapacity].
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hatoba.model.errors import FieldError
from hatoba.model.scaling import (
    AdjustmentType,
    ComparisonOperator,
    MetricType,
    PolicyType,
    ScalableTarget,
    ScalingPolicy,
    ScheduledAction,
    StepAdjustment,
    StepScalingConfiguration,
    TargetTrackingConfiguration,
)

EPSILON = 1e-9  # float noise: ceil(3 * 0.7 / 0.35) must be 6, not 7


# -- validation ---------------------------------------------------------------------------
def step_errors(cfg: StepScalingConfiguration, path: str) -> list[FieldError]:
    """Application Auto Scaling's rules for step adjustments, plus: the steps must cover
    every breach of the alarm (from the threshold on, in its direction)."""
    errors: list[FieldError] = []
    steps = cfg.step_adjustments
    at = f"{path}.stepAdjustments"
    for i, s in enumerate(steps):
        lo, hi = s.metric_interval_lower_bound, s.metric_interval_upper_bound
        if lo is None and hi is None:
            errors.append(
                FieldError(f"{at}[{i}]", "the lower and upper bound cannot both be unbounded")
            )
        elif lo is not None and hi is not None and hi <= lo:
            errors.append(
                FieldError(
                    f"{at}[{i}].metricIntervalUpperBound",
                    f"must be above metricIntervalLowerBound ({lo:g})",
                )
            )
        if cfg.adjustment_type == AdjustmentType.EXACT_CAPACITY and s.scaling_adjustment < 0:
            errors.append(
                FieldError(f"{at}[{i}].scalingAdjustment", "ExactCapacity must not be negative")
            )
        if (
            cfg.adjustment_type == AdjustmentType.PERCENT_CHANGE_IN_CAPACITY
            and s.scaling_adjustment < -100
        ):
            errors.append(
                FieldError(f"{at}[{i}].scalingAdjustment", "cannot remove more than 100 percent")
            )
    if (
        cfg.min_adjustment_magnitude is not None
        and cfg.adjustment_type != AdjustmentType.PERCENT_CHANGE_IN_CAPACITY
    ):
        errors.append(
            FieldError(f"{path}.minAdjustmentMagnitude", "applies only to PercentChangeInCapacity")
        )
    if errors:
        return errors
    no_lower = [i for i, s in enumerate(steps) if s.metric_interval_lower_bound is None]
    no_upper = [i for i, s in enumerate(steps) if s.metric_interval_upper_bound is None]
    for which, idx in (("lower", no_lower), ("upper", no_upper)):
        if len(idx) > 1:
            errors.append(
                FieldError(
                    f"{at}[{idx[1]}].metricInterval{which.title()}Bound",
                    f"only one step may have an unbounded {which} bound (step {idx[0]} has one)",
                )
            )
    if errors:
        return errors
    order = sorted(range(len(steps)), key=lambda i: _lower(steps[i]))
    for a, b in itertools.pairwise(order):
        hi, lo = steps[a].metric_interval_upper_bound, steps[b].metric_interval_lower_bound
        assert lo is not None  # only the first in order may be unbounded below
        if hi is None or hi > lo:
            errors.append(FieldError(f"{at}[{b}].metricIntervalLowerBound", f"overlaps step {a}"))
        elif hi < lo:
            errors.append(
                FieldError(
                    f"{at}[{b}].metricIntervalLowerBound",
                    f"leaves a gap after step {a} (which ends at {hi:g})",
                )
            )
    if errors:
        return errors
    first, last = steps[order[0]], steps[order[-1]]
    if cfg.comparison_operator.above:
        lo = first.metric_interval_lower_bound
        if lo is not None and lo > 0:
            errors.append(
                FieldError(
                    f"{at}[{order[0]}].metricIntervalLowerBound",
                    f"the alarm fires at the threshold: the steps must start at 0, not {lo:g}",
                )
            )
        if last.metric_interval_upper_bound is not None:
            errors.append(
                FieldError(
                    f"{at}[{order[-1]}].metricIntervalUpperBound",
                    "the last step must be unbounded above (breaches can be any size)",
                )
            )
    else:
        hi = last.metric_interval_upper_bound
        if hi is not None and hi < 0:
            errors.append(
                FieldError(
                    f"{at}[{order[-1]}].metricIntervalUpperBound",
                    f"the alarm fires at the threshold: the steps must end at 0, not {hi:g}",
                )
            )
        if first.metric_interval_lower_bound is not None:
            errors.append(
                FieldError(
                    f"{at}[{order[0]}].metricIntervalLowerBound",
                    "the first step must be unbounded below (breaches can be any size)",
                )
            )
    return errors


def _lower(s: StepAdjustment) -> float:
    lo = s.metric_interval_lower_bound
    return -math.inf if lo is None else lo


# -- single policies ----------------------------------------------------------------------
def _ceil(x: float) -> int:
    return max(0, math.ceil(x - EPSILON))


def target_tracking_desired(cfg: TargetTrackingConfiguration, current: int, metric: float) -> int:
    """The count one target tracking policy asks for (before stabilization and bounds)."""
    target = cfg.target_value
    if current <= 0:
        if metric <= cfg.activation_value:
            return 0
        if cfg.metric_type == MetricType.AVERAGE_VALUE:
            return max(1, _ceil(metric / target))
        return 1
    if cfg.metric_type == MetricType.VALUE:
        ratio = metric / target
        if abs(ratio - 1) <= cfg.tolerance + EPSILON:
            return current
        return _ceil(current * ratio)
    wanted = metric / target
    if abs(wanted / current - 1) <= cfg.tolerance + EPSILON:
        return current
    return _ceil(wanted)


def breached(cfg: StepScalingConfiguration, metric: float) -> bool:
    t = cfg.threshold
    return {
        ComparisonOperator.GREATER_THAN_OR_EQUAL: metric >= t,
        ComparisonOperator.GREATER_THAN: metric > t,
        ComparisonOperator.LESS_THAN: metric < t,
        ComparisonOperator.LESS_THAN_OR_EQUAL: metric <= t,
    }[cfg.comparison_operator]


def find_step(cfg: StepScalingConfiguration, metric: float) -> StepAdjustment | None:
    """The step holding metric - threshold. Above the threshold a lower bound is inclusive
    and an upper bound exclusive; below it, the other way round (as documented for
    ``StepAdjustment``). Exactly at the threshold, the alarm's direction decides."""
    diff = metric - cfg.threshold
    above = diff > 0 or (diff == 0 and cfg.comparison_operator.above)
    for s in cfg.step_adjustments:
        lo, hi = s.metric_interval_lower_bound, s.metric_interval_upper_bound
        if above:
            ok = (lo is None or diff >= lo) and (hi is None or diff < hi)
        else:
            ok = (lo is None or diff > lo) and (hi is None or diff <= hi)
        if ok:
            return s
    return None


def percent_change(current: int, percent: int, min_magnitude: int | None) -> int:
    """ECS's rounding: results above 1 round down, below -1 round up (toward zero), those
    between 0 and 1 (or -1 and 0) become 1 (or -1); then at least ``min_magnitude``."""
    raw = current * percent / 100
    if raw == 0:
        change = 0
    elif 0 < raw < 1:
        change = 1
    elif -1 < raw < 0:
        change = -1
    else:
        change = math.trunc(raw + (EPSILON if raw > 0 else -EPSILON))
    if min_magnitude is not None and percent != 0 and abs(change) < min_magnitude:
        change = min_magnitude if percent > 0 else -min_magnitude
    return change


def adjusted(cfg: StepScalingConfiguration, base: int, adjustment: int) -> int:
    if cfg.adjustment_type == AdjustmentType.EXACT_CAPACITY:
        return max(0, adjustment)
    if cfg.adjustment_type == AdjustmentType.CHANGE_IN_CAPACITY:
        return max(0, base + adjustment)
    return max(0, base + percent_change(base, adjustment, cfg.min_adjustment_magnitude))


# -- state and results --------------------------------------------------------------------
@dataclass(frozen=True)
class Reading:
    """A policy's metric as the loop sees it now: a value, or why there is none."""

    value: float | None = None
    error: str | None = None  # None with no value: no reading yet

    @property
    def ok(self) -> bool:
        return self.value is not None and math.isfinite(self.value)


@dataclass(frozen=True)
class StepCooldown:
    at: datetime  # when the policy last changed the count
    base: int  # the count before the scale-out that started the cooldown
    out: bool


@dataclass(frozen=True)
class ScalingState:
    # policy name -> (time, recommended count), oldest first, within its window
    recommendations: Mapping[str, tuple[tuple[datetime, int], ...]] = field(default_factory=dict)
    cooldowns: Mapping[str, StepCooldown] = field(default_factory=dict)
    active_at: datetime | None = None  # last time a metric showed work (or was unreadable)
    scaled_at: datetime | None = None  # last change of the count


@dataclass(frozen=True)
class Inputs:
    target: ScalableTarget
    policies: Sequence[ScalingPolicy]
    readings: Mapping[str, Reading]  # by policy name; missing = no reading yet
    current: int  # the service's desiredCount
    now: datetime
    deploying: bool = False  # a deployment is in progress: no scale-in


@dataclass(frozen=True)
class Vote:
    policy: str
    desired: int | None  # None: abstains
    reason: str
    metric: float | None = None
    active: bool = False  # the metric shows work to do (or could not be read)
    failed: bool = False


@dataclass(frozen=True)
class Decision:
    desired: int
    current: int
    reason: str
    policy: str | None = None
    metric_value: float | None = None
    votes: tuple[Vote, ...] = ()

    @property
    def changed(self) -> bool:
        return self.desired != self.current


def _target_tracking_vote(
    p: ScalingPolicy,
    cfg: TargetTrackingConfiguration,
    inp: Inputs,
    value: float,
    history: list[tuple[datetime, int]],
) -> Vote:
    current = inp.current
    raw = target_tracking_desired(cfg, current, value)
    history.append((inp.now, raw))
    unit = "per task" if cfg.metric_type == MetricType.AVERAGE_VALUE else "(utilization)"
    about = f"metric {value:g}, target {cfg.target_value:g} {unit}"
    active = value > cfg.activation_value
    if raw >= current:
        return Vote(p.policy_name, raw, f"{about}: {raw} tasks", value, active)
    if cfg.disable_scale_in:  # does not vote: other policies may still scale in
        return Vote(p.policy_name, None, f"{about}: scale-in disabled", value, active)
    stabilized = max(n for _, n in history)
    if stabilized >= current:
        window = cfg.scale_in_stabilization_seconds
        why = f"{about}: {raw} tasks, held for the {window}s scale-in stabilization window"
        return Vote(p.policy_name, current, why, value, active)
    if stabilized == raw:
        return Vote(p.policy_name, raw, f"{about}: {raw} tasks", value, active)
    why = f"{about}: {stabilized} tasks (highest within the stabilization window)"
    return Vote(p.policy_name, stabilized, why, value, active)


def _step_vote(
    p: ScalingPolicy, cfg: StepScalingConfiguration, inp: Inputs, value: float, state: ScalingState
) -> Vote:
    name, current = p.policy_name, inp.current
    op = cfg.comparison_operator.value
    if not breached(cfg, value):
        return Vote(name, None, f"metric {value:g} not {op} {cfg.threshold:g}", value)
    step = find_step(cfg, value)
    if step is None:  # validation makes this impossible for stored policies
        return Vote(name, None, f"metric {value:g}: no step adjustment covers it", value)
    new = adjusted(cfg, current, step.scaling_adjustment)
    about = f"metric {value:g} {op} {cfg.threshold:g}: {cfg.adjustment_type.value} " + (
        f"{step.scaling_adjustment:+d}"
        if cfg.adjustment_type != AdjustmentType.EXACT_CAPACITY
        else f"{step.scaling_adjustment}"
    )
    cd = state.cooldowns.get(name)
    cooling = cd is not None and inp.now < cd.at + timedelta(seconds=cfg.cooldown)
    if new > current and cooling and cd is not None and cd.out:
        new = max(current, adjusted(cfg, cd.base, step.scaling_adjustment))
        about += f" from {cd.base} (in cooldown: counts the last scale-out)"
    elif new < current and cooling:
        return Vote(name, None, f"{about}: scale-in waits for the {cfg.cooldown}s cooldown", value)
    return Vote(name, new, f"{about} -> {new} tasks", value, active=new > 0)


History = tuple[tuple[datetime, int], ...]


def _votes(inp: Inputs, state: ScalingState) -> tuple[list[Vote], dict[str, History]]:
    votes: list[Vote] = []
    recs: dict[str, History] = {}
    for p in sorted(inp.policies, key=lambda p: p.policy_name):
        reading = inp.readings.get(p.policy_name, Reading())
        tt = p.target_tracking_configuration
        history: list[tuple[datetime, int]] = []
        if p.policy_type == PolicyType.TARGET_TRACKING and tt is not None:
            window = timedelta(seconds=tt.scale_in_stabilization_seconds)
            # first seen: as if it had recommended the current count (no scale-in before
            # one full window)
            seen = state.recommendations.get(p.policy_name, ((inp.now, inp.current),))
            history = [(t, n) for t, n in seen if t > inp.now - window]
        if not reading.ok:
            why = f"metric unavailable: {reading.error}" if reading.error else "no metric yet"
            history.append((inp.now, inp.current))
            votes.append(Vote(p.policy_name, inp.current, why, None, active=True, failed=True))
        elif p.policy_type == PolicyType.TARGET_TRACKING and tt is not None:
            assert reading.value is not None
            votes.append(_target_tracking_vote(p, tt, inp, reading.value, history))
        elif p.step_scaling_configuration is not None:
            assert reading.value is not None
            votes.append(_step_vote(p, p.step_scaling_configuration, inp, reading.value, state))
        if p.policy_type == PolicyType.TARGET_TRACKING:
            recs[p.policy_name] = tuple(history)
    return votes, recs


# -- the decision -------------------------------------------------------------------------
def evaluate(inp: Inputs, state: ScalingState) -> tuple[Decision, ScalingState]:
    """One evaluation: the count to set (possibly unchanged) and the state to keep. The
    state assumes the decision is applied."""
    target, current, now = inp.target, inp.current, inp.now
    votes, recs = _votes(inp, state)
    active_at = state.active_at or now
    if any(v.active for v in votes):
        active_at = now
    suspended = target.suspended_state
    counted = [v for v in votes if v.desired is not None]
    if suspended.dynamic_scaling_out_suspended:
        counted = [v for v in counted if v.desired is not None and v.desired <= current]
    if suspended.dynamic_scaling_in_suspended or inp.deploying:
        counted = [v for v in counted if v.desired is not None and v.desired >= current]
    winner: Vote | None = None
    outs = [v for v in counted if (v.desired or 0) > current]
    if outs:
        winner = max(outs, key=lambda v: v.desired or 0)
    elif counted and all((v.desired or 0) < current for v in counted):
        winner = max(counted, key=lambda v: v.desired or 0)
    desired = current if winner is None or winner.desired is None else winner.desired
    if winner is not None:
        reason = f"policy {winner.policy}: {winner.reason}"
    elif inp.deploying and any(v.desired is not None and v.desired < current for v in votes):
        reason = "scale-in waits for the deployment in progress"
    else:
        reason = "; ".join(f"{v.policy}: {v.reason}" for v in votes) or "no policy"
    lo, hi = target.min_capacity, target.max_capacity
    if desired > hi or desired < lo:
        bound = min(max(desired, lo), hi)
        which = f"maxCapacity {hi}" if desired > hi else f"minCapacity {lo}"
        if winner is not None and (bound > current) == (desired > current):
            reason = f"{reason}; bounded by {which}"
        else:
            winner, reason = None, f"at {which}"
        desired = bound
    if desired == 0 < current and hi > 0:
        wait = timedelta(seconds=target.scale_to_zero_cooldown_seconds)
        since = max(active_at, state.scaled_at or active_at)
        if any(v.failed for v in votes):
            desired, reason = 1, "never scales to 0 on a failed metric read"
        elif now < since + wait:
            desired = 1
            secs = target.scale_to_zero_cooldown_seconds
            reason = f"scale to 0 waits for the {secs}s scale-to-zero cooldown"
    decision = Decision(
        desired=desired,
        current=current,
        reason=reason,
        policy=winner.policy if winner is not None and desired != current else None,
        metric_value=winner.metric if winner is not None else None,
        votes=tuple(votes),
    )
    known = {p.policy_name: p for p in inp.policies}
    cooldowns = {k: v for k, v in state.cooldowns.items() if k in known}
    if decision.changed and winner is not None:
        cfg = known[winner.policy].step_scaling_configuration
        if cfg is not None:
            old, out = cooldowns.get(winner.policy), desired > current
            base = current
            if (
                old is not None
                and old.out
                and out
                and now < old.at + timedelta(seconds=cfg.cooldown)
            ):
                base = old.base  # the cooldown's scale-out continues: same base
            cooldowns[winner.policy] = StepCooldown(now, base, out)
    new_state = ScalingState(
        recommendations=recs,
        cooldowns=cooldowns,
        active_at=active_at,
        scaled_at=now if decision.changed else state.scaled_at,
    )
    return decision, new_state


# -- scheduled actions --------------------------------------------------------------------
MAX_CATCH_UP = 100_000  # fire times walked over to find the latest missed one
NextFire = Callable[[ScheduledAction, datetime], "datetime | None"]


@dataclass(frozen=True)
class Fired:
    action: ScheduledAction
    at: datetime  # the fire time that came due


def due_actions(
    actions: Sequence[ScheduledAction],
    fired: Mapping[str, datetime],
    now: datetime,
    next_fire: NextFire,
) -> list[Fired]:
    """Actions with a fire time (after their last firing, or their creation) that has come,
    each with the latest such time, oldest first: missed fire times collapse into one."""
    out = []
    for a in actions:
        if a.end_time is not None and now > a.end_time:
            continue
        after = fired.get(a.scheduled_action_name, a.created_at)
        if a.start_time is not None and after < a.start_time:
            after = a.start_time - timedelta(microseconds=1)
        at = next_fire(a, after)
        if at is None or at > now:
            continue
        for _ in range(MAX_CATCH_UP):  # the latest fire time that has come
            later = next_fire(a, at)
            if later is None or later > now:
                break
            at = later
        out.append(Fired(a, at))
    out.sort(key=lambda f: (f.at, f.action.scheduled_action_name))
    return out


def apply_actions(target: ScalableTarget, due: Sequence[Fired]) -> ScalableTarget:
    """The target with each due action's min/max applied in order (a later one wins); a new
    min above the max (or a max below the min) moves the other bound with it."""
    lo, hi = target.min_capacity, target.max_capacity
    fired = dict(target.scheduled_fired)
    for f in due:
        a = f.action
        if a.min_capacity is not None:
            lo = a.min_capacity
            hi = max(hi, lo) if a.max_capacity is None else hi
        if a.max_capacity is not None:
            hi = a.max_capacity
            lo = min(lo, hi) if a.min_capacity is None else lo
        fired[a.scheduled_action_name] = f.at
    return target.model_copy(
        update={"min_capacity": lo, "max_capacity": max(lo, hi), "scheduled_fired": fired}
    )
