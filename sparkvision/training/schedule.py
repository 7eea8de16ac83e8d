"""When training stops and how its learning rate decays: budgeted training, in pure functions.

The learning rate follows a cosine from ``learning_rate`` down to ``ALPHA`` of it over a
*horizon* of planned epochs. With a time budget the horizon is fitted into it (budgeted training,
Li et al., "Budgeted Training: Rethinking Deep Neural Network Training Under Resource
Constraints", ICLR 2020): after the first epoch the speed measured on its steady steps says how
many epochs fit into the time left, and the schedule is planned to end there, so a slower machine
gets a shorter schedule that still decays completely instead of one cut off at a high learning
rate. After every later epoch the plan is checked against the time left again. It may grow
while less than a third of the budget is spent (the learning rate is still near its peak),
judged by the fastest epoch so far: a machine is only ever slowed by noise (another process, a
neighbour on the host), and one slow early epoch must not leave a third of the budget unused.
After that it only shrinks (a schedule that grew late would raise a learning rate already decayed).

With N workers the global batch (``batch_size``) is split over them, so the steps of an epoch,
the schedule and the decisions below are the same for any N. Every worker runs the same number
of steps in an epoch (``steps_per_epoch``): they are agreed before training from the sizes of
every worker's part of the data, so a worker never waits in an all-reduce for a peer that has
run out of data.

Nothing here imports TensorFlow or Spark: the chief worker calls ``decide`` after each epoch and
the unit tests call everything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

#: The validation metric that picks the weights to export and drives early stopping.
MONITOR = "val_accuracy"
#: Validation accuracy within this of the best counts as a tie; ties go to the later epoch.
BEST_TOLERANCE = 0.002
#: The schedule ends at this fraction of the peak learning rate.
ALPHA = 0.01
#: Steps at the start of an attempt left out of the speed measurement (graph tracing, warm-up).
WARMUP_STEPS = 3
#: The plan may grow while less than this share of the budget is spent (the cosine is then still
#: above ~75% of its peak, so a longer horizon barely changes the learning rate).
GROWTH_WINDOW = 1 / 3


def cosine_learning_rate(step: float, horizon: float, peak: float, alpha: float = ALPHA) -> float:
    """The learning rate at ``step`` of a cosine schedule over ``horizon`` steps (flat after it)."""
    progress = min(step / horizon, 1.0) if horizon > 0 else 1.0
    return peak * (alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * progress)))


def per_replica_batch(global_batch: int, workers: int) -> int:
    """Images per step on each worker: the global batch split evenly (the rest is not used)."""
    if workers < 1 or global_batch < workers:
        raise ValueError(f"a global batch of {global_batch} cannot be split over {workers} workers")
    return global_batch // workers


def steps_per_epoch(part_sizes: Sequence[int], batch: int) -> int:
    """The steps every worker runs in an epoch, given each worker's number of images.

    As many full global batches as the whole split fills: with parts that differ by at most one
    image (as Spark hands them out) every image is seen once an epoch except a remainder smaller
    than one global batch. A worker whose part is smaller than its share repeats some of its
    images (reshuffled) and a larger one leaves some out, but nobody stops early and hangs the
    others. A worker without any image cannot train at all: that is an error.
    """
    if not part_sizes or min(part_sizes) < 1:
        raise ValueError(f"every worker needs training images; the parts hold {list(part_sizes)}")
    steps = sum(part_sizes) // (batch * len(part_sizes))
    if steps < 1:
        raise ValueError(f"{sum(part_sizes)} training images do not fill one global batch of {batch * len(part_sizes)}")
    return steps


def steady_epoch_seconds(
    epoch_seconds: float, warmup_seconds: float, train_seconds: float, steps: int, warmup_steps: int
) -> float:
    """What an epoch takes once warm: ``epoch_seconds`` with the warm-up steps at the steady pace.

    The first steps of an attempt include graph tracing (seconds); extrapolating from them would
    plan fewer epochs than fit.
    """
    if steps <= warmup_steps or train_seconds <= warmup_seconds:
        return epoch_seconds
    steady_step = (train_seconds - warmup_seconds) / (steps - warmup_steps)
    return epoch_seconds - warmup_seconds + warmup_steps * steady_step


def plan_epochs(
    max_epochs: int,
    budget_seconds: float,
    spent_seconds: float,
    epochs_done: int,
    epoch_seconds: float,
    planned: int,
    may_grow: bool = False,
) -> int:
    """The epochs of a complete schedule that fits into the time left.

    Never more than ``planned`` unless ``may_grow`` (early in the budget, the learning rate still
    near its peak). No budget: ``max_epochs``. The result is never below ``epochs_done``; equal
    to it means that no further epoch fits and training is over.
    """
    if budget_seconds <= 0:
        return max_epochs
    if epoch_seconds <= 0:
        return min(planned, max_epochs)
    fits = epochs_done + int(max(budget_seconds - spent_seconds, 0) // epoch_seconds)
    return max(epochs_done, min(max_epochs if may_grow else planned, max_epochs, fits))


@dataclass(frozen=True)
class Decision:
    """What the chief decided after an epoch; every worker acts on it."""

    stop: bool
    planned: int
    #: Keep this epoch's weights as the ones to export (the latest within BEST_TOLERANCE of the best).
    keep_weights: bool
    notes: list[str] = field(default_factory=list)


def decide(
    rows: Sequence[dict],
    *,
    max_epochs: int,
    budget_seconds: float,
    patience: int,
    planned: int,
    epoch_seconds: float,
) -> Decision:
    """Early stopping, the weights to keep and the budgeted plan after the epochs in ``rows``.

    ``rows`` are history.csv's rows, every epoch so far across resumed attempts, the last one
    just finished; state that must survive a retry (best score, epochs without a gain, seconds
    spent) is computed from them. ``epoch_seconds``: what the next epoch is expected to take.
    """
    done = len(rows)
    notes: list[str] = []
    scores = [float(row[MONITOR]) for row in rows if row.get(MONITOR) not in (None, "")]
    keep = not scores or scores[-1] >= max(scores) - BEST_TOLERANCE
    stop = False
    if scores and patience:
        wait = len(scores) - 1 - scores.index(max(scores))
        if wait >= patience:
            notes.append(f"early stopping: no {MONITOR} gain for {wait} epochs")
            stop = True
    spent = sum(float(row.get("seconds") or 0) for row in rows)
    may_grow = budget_seconds > 0 and spent < budget_seconds * GROWTH_WINDOW
    # Growing: the fastest epoch so far (the first one's time is not steady, ``epoch_seconds`` is
    # its steady estimate); shrinking: the last one (a machine that really slows down).
    paces = [float(row.get("seconds") or 0) for row in rows[1:-1]] + [epoch_seconds]
    pace = min((p for p in paces if p > 0), default=epoch_seconds) if may_grow else epoch_seconds
    new_plan = plan_epochs(max_epochs, budget_seconds, spent, done, pace, planned, may_grow=may_grow)
    if new_plan != planned and new_plan > done:
        notes.append(
            f"time budget: {budget_seconds / 60:.1f} min at {pace:.1f} s an epoch; the learning-rate "
            f"schedule now ends after epoch {new_plan} (of at most {max_epochs})"
        )
    if done >= new_plan and done < max_epochs and not stop:
        notes.append(
            f"time budget: {spent / 60:.1f} of {budget_seconds / 60:.1f} min spent; the schedule is complete "
            f"after {done} epochs"
        )
    return Decision(stop=stop or done >= new_plan, planned=max(new_plan, done), keep_weights=keep, notes=notes)


def exported_epoch(scores: Sequence[float]) -> int:
    """The 1-based epoch whose weights are exported: the latest within BEST_TOLERANCE of the best."""
    return max(i for i, score in enumerate(scores) if score >= max(scores) - BEST_TOLERANCE) + 1
