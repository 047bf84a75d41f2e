"""The model lifecycle: challengers in shadow, promotion on evidence, automatic rollback.

A partition's champion makes the predictions. Other models run beside it in shadow, scored and
trained on the same events (:mod:`streamer.prequential`), never touching the outputs:

* **challengers**: alternative models named in ``[[lifecycle.challengers]]`` (permanent
  contenders), and a fresh model started when the champion's concept-drift detector warns or
  alarms (``lifecycle.retrain_on``), as River's ``DriftRetrainingClassifier`` does; a drift-started
  challenger that has not won after ``lifecycle.challenger_events`` events is dropped;
* **the previous champion**, kept for ``lifecycle.keep_previous`` events after a promotion.

Every ``lifecycle.step`` events the policy compares each model in shadow with the champion on
the same labelled events (a paired comparison over the last ``lifecycle.window`` of them):

* a challenger **replaces** the champion when its error is lower by at least
  ``lifecycle.margin`` and a paired test supports it at ``lifecycle.alpha``: McNemar's exact
  test on the events one model got right and the other wrong (classifiers), a paired t-test
  on the absolute errors (regressors);
* after a promotion, if the previous champion beats the new one the same way, the worker
  **rolls back**: the previous champion, which kept learning in shadow, becomes the champion
  again under a new version.

Decisions are taken only at fixed offsets (multiples of ``lifecycle.step``), before the first
record past the boundary is scored, never at batch ends: a replay after a crash takes the same
decisions at the same events, whatever the batches. Each decision is a :class:`Decision` (the
worker publishes it on the lifecycle topic, counts it in a metric and, when the champion
changes, publishes a model update); a new champion gets new model-level drift detectors (its
error and prediction references restart) and a new version.

Examples
--------
>>> round(mcnemar(won=30, lost=10), 4)  # one-sided exact p: the challenger right 30, wrong 10
0.0011
>>> round(mcnemar(won=12, lost=10), 3)
0.416
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from streamer.drift.monitor import DriftReport
from streamer.prequential import ModelSlot, Outcome
from streamer.records import DriftEvent
from streamer.settings import LifecycleSettings, Settings
from streamer.validate import Parsed

__all__ = ["DECISIONS", "Decision", "Lifecycle", "Pairing", "mcnemar", "paired_t"]

#: Every kind of decision (a bounded set: it becomes a metric label).
DECISIONS = ("challenger_started", "promoted", "rolled_back", "challenger_dropped", "retired")


def mcnemar(won: int, lost: int) -> float:
    """One-sided exact McNemar p-value that the challenger is better.

    ``won``: labelled events the challenger got right and the champion wrong; ``lost``: the
    reverse. Under the null hypothesis each such discordant event is a fair coin, so this is
    the binomial tail ``P(X >= won)`` with ``n = won + lost`` and ``p = 1/2``.
    """
    n = won + lost
    if n == 0:
        return 1.0
    # Summed in log space: n reaches the window size (hundreds), 2**n overflows floats.
    log_half_n = -n * math.log(2.0)
    tail = 0.0
    for k in range(won, n + 1):
        tail += math.exp(
            math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half_n
        )
    return min(tail, 1.0)


def paired_t(n: int, total: float, total_sq: float) -> float:
    """One-sided p-value that the mean of ``n`` paired differences is above 0 (normal
    approximation of the paired t-test: the windows hold hundreds of differences)."""
    if n < 2:
        return 1.0
    mean = total / n
    var = max(total_sq / n - mean * mean, 0.0) * n / (n - 1)
    if var == 0.0:
        return 0.0 if mean > 0 else 1.0
    t = mean / math.sqrt(var / n)
    return 0.5 * math.erfc(t / math.sqrt(2.0))


class Pairing:
    """The last ``window`` labelled events both a model in shadow and the champion scored.

    Keeps, for classifiers, the discordant counts (``won``: the model right and the champion
    wrong; ``lost``: the reverse) and the error sums; for regressors, the sum and sum of
    squares of ``champion error - model error``. O(1) per event.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self._pairs: deque[tuple[float, float]] = deque()
        self.won = 0
        self.lost = 0
        self.champion_error = 0.0
        self.model_error = 0.0
        self.diff_sq = 0.0
        self.first_offset: int | None = None
        self.last_offset: int | None = None
        self._offsets: deque[int] = deque()

    def __len__(self) -> int:
        return len(self._pairs)

    def add(self, offset: int, champion: float, model: float) -> None:
        pairs = self._pairs
        if len(pairs) == self.window:
            self._account(*pairs.popleft(), -1)
            self._offsets.popleft()
        pairs.append((champion, model))
        self._offsets.append(offset)
        self._account(champion, model, 1)

    def _account(self, champion: float, model: float, sign: int) -> None:
        # Discordant events: for classifiers (0/1 errors) McNemar's counts.
        if champion > model:
            self.won += sign
        elif model > champion:
            self.lost += sign
        self.champion_error += sign * champion
        self.model_error += sign * model
        d = champion - model
        self.diff_sq += sign * d * d

    def offsets(self) -> tuple[int, int]:
        return (self._offsets[0], self._offsets[-1]) if self._offsets else (-1, -1)

    def gain(self) -> float:
        """How much lower the model's mean error is than the champion's, over the window.

        For classifiers that is accuracy points; for regressors, relative to the champion's
        mean absolute error.
        """
        n = len(self._pairs)
        if n == 0:
            return 0.0
        diff = (self.champion_error - self.model_error) / n
        return diff

    def clear(self) -> None:
        self.__init__(self.window)  # type: ignore[misc]


@dataclass(slots=True)
class Decision:
    """A lifecycle decision of one partition, at ``offset`` (the first record it applies to).

    ``statistic`` is the test's p-value and ``gain`` the error the winner saved per event over
    the window (accuracy points for classifiers), both None for decisions without a test.
    """

    decision: str
    topic: str
    partition: int
    offset: int
    model: str
    role: str
    version: int
    parent: int | None
    reason: str
    test: str = ""
    statistic: float | None = None
    gain: float | None = None
    window: tuple[int, int] = (-1, -1)
    compared: int = 0
    trigger: DriftEvent | None = None
    champion: ModelSlot | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """Plain data, as written to the lifecycle topic."""
        return {
            "decision": self.decision,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "model": self.model,
            "role": self.role,
            "version": self.version,
            "parent_version": self.parent,
            "reason": self.reason,
            "test": self.test,
            "p_value": self.statistic,
            "gain": self.gain,
            "window_first_offset": self.window[0],
            "window_last_offset": self.window[1],
            "compared": self.compared,
            "trigger": None if self.trigger is None else self.trigger.as_dict(),
        }


@dataclass(slots=True)
class _Shadow:
    """What the policy remembers of one model in shadow (parallel to ``state.slots[1:]``)."""

    pairing: Pairing
    started: int  # offset of the first record it saw
    permanent: bool  # never dropped for not winning
    alternative: bool = False  # a configured alternative: never retired
    trigger: DriftEvent | None = None


@dataclass(slots=True)
class LifecycleState:
    """A partition's lifecycle bookkeeping; it lives in the partition state (checkpointed)."""

    window: int = 0  # the step window (offset // step) the last decisions were taken for
    shadows: list[_Shadow] = field(default_factory=list)
    pending: DriftEvent | None = None  # a drift signal waiting for the next boundary
    promoted_at: int | None = None
    champion_alternative: bool = False  # the champion is a configured alternative


class Lifecycle:
    """The lifecycle policy, built from the settings; its state lives in each partition."""

    def __init__(self, settings: Settings) -> None:
        from streamer.state import new_slot

        self._settings = settings
        c: LifecycleSettings = settings.lifecycle
        self.step_events = c.step
        self.window = c.window
        self.min_compared = c.min_compared
        self.margin = c.margin
        self.alpha = c.alpha
        self.retrain_on = set(c.retrain_on)
        self.challenger_events = c.challenger_events
        self.keep_previous = c.keep_previous
        self.alternatives = list(c.challengers)
        self._new_slot = new_slot
        # A challenger of each kind is built once here, so a bad spec fails at start-up.
        for spec in self.alternatives:
            self._alternative(spec, version=0, parent=None)

    # -- building models ------------------------------------------------------------------

    def _alternative(self, spec: Any, *, version: int, parent: int | None) -> ModelSlot:
        s = self._settings
        model = s.model.model_copy(update={"preset": spec.preset, "params": dict(spec.params)})
        return self._new_slot(
            s.model_copy(update={"model": model}),
            role="challenger",
            version=version,
            parent=parent,
            reason="alternative",
            name=spec.name,
        )

    def attach(self, state: Any) -> None:
        """Give a new partition its lifecycle state and its configured challengers."""
        state.lifecycle = LifecycleState()
        for spec in self.alternatives:
            state.versions += 1
            slot = self._alternative(spec, version=state.versions, parent=None)
            state.slots.append(slot)
            state.lifecycle.shadows.append(_Shadow(Pairing(self.window), 0, True, True))

    # -- per batch ------------------------------------------------------------------------

    def cut(self, state: Any, parsed: Parsed) -> list[Parsed]:
        """The batch split at step boundaries (multiples of ``step`` in offsets)."""
        step = self.step_events
        events, decoded, offsets = parsed.events, parsed.decoded, parsed.decoded_offsets
        if not offsets or offsets[0] // step == offsets[-1] // step:
            return [parsed]
        pieces: list[Parsed] = []
        e = 0  # events are the decoded records that validated: a subsequence, in order
        start = 0
        for i in range(1, len(offsets) + 1):
            if i < len(offsets) and offsets[i] // step == offsets[start] // step:
                continue
            end_offset = offsets[i - 1]
            first = e
            while e < len(events) and events[e].offset <= end_offset:
                e += 1
            pieces.append(Parsed(events[first:e], [], decoded[start:i], offsets[start:i]))
            start = i
        return pieces

    def before(self, state: Any, first_offset: int) -> list[Decision]:
        """Decisions due before the record at ``first_offset`` is scored (at a boundary)."""
        life: LifecycleState = state.lifecycle
        window = first_offset // self.step_events
        if window <= life.window:
            return []
        life.window = window
        return self._decide(state, window * self.step_events)

    def observe(self, state: Any, outcome: Outcome, report: DriftReport | None) -> None:
        """Pair each model in shadow with the champion on this piece's labelled events, and
        remember a concept-drift signal for the next boundary."""
        life: LifecycleState = state.lifecycle
        champion = outcome.champion
        if len(outcome.slots) > 1 and champion.errors:
            by_offset = dict(zip(champion.error_offsets, champion.errors, strict=True))
            for shadow, out in zip(life.shadows, outcome.slots[1:], strict=True):
                add = shadow.pairing.add
                for offset, error in zip(out.error_offsets, out.errors, strict=True):
                    c = by_offset.get(offset)
                    if c is not None:
                        add(offset, c, error)
        if report is not None and self.retrain_on:
            for ev in report.events:
                if ev.signal == "concept" and _level(ev) in self.retrain_on:
                    life.pending = ev

    # -- decisions ------------------------------------------------------------------------

    def _decide(self, state: Any, offset: int) -> list[Decision]:
        life: LifecycleState = state.lifecycle
        out: list[Decision] = []
        if state.champion.failure is not None:
            # 0. A poisoned champion (non-finite outputs) is replaced at once, by the best
            #    model in shadow, or by a fresh one.
            out += self._replace_poisoned(state, offset)
        # 1. Tests: a challenger that beats the champion is promoted; a previous champion
        #    that beats the new one is rolled back to.
        best: tuple[float, int] | None = None
        for i, (slot, shadow) in enumerate(zip(state.slots[1:], life.shadows, strict=True), 1):
            if slot.failure is not None or len(shadow.pairing) < self.min_compared:
                continue
            p = self._p_value(slot, shadow.pairing)
            gain = shadow.pairing.gain()
            wins = p <= self.alpha and gain >= self._needed(slot, shadow.pairing)
            if wins and (best is None or gain > best[0]):
                best = (gain, i)
        if best is not None:
            out += self._replace(state, best[1], offset)
            # A drift signal waiting from the old champion's detector is about the old one.
            life.pending = None
        # 2. Housekeeping: failed models, challengers that never won, an old previous one.
        for i in range(len(state.slots) - 1, 0, -1):
            slot, shadow = state.slots[i], life.shadows[i - 1]
            age = offset - shadow.started
            if slot.failure is not None:
                out.append(self._drop(state, i, offset, f"failed: {slot.failure}"))
            elif (
                slot.role == "challenger" and not shadow.permanent and age >= self.challenger_events
            ):
                out.append(self._drop(state, i, offset, f"no win in {age} events"))
            elif slot.role == "previous" and age >= self.keep_previous:
                why = f"kept {age} events without a rollback"
                out.append(self._decision("retired", state, slot, offset, why))
                self._retire(state, i)
        # 3. A concept drift signal starts a fresh challenger (replacing an older one that
        #    has not won: the newest change is the one to learn).
        trigger, life.pending = life.pending, None
        if trigger is not None:
            warm = False
            for i in range(len(state.slots) - 1, 0, -1):
                shadow = life.shadows[i - 1]
                if state.slots[i].role != "challenger" or shadow.permanent:
                    continue
                if offset - shadow.started <= self.window:
                    warm = True  # started on this change's warning: keep what it learned
                else:
                    out.append(self._drop(state, i, offset, "replaced by a newer challenger"))
            if not warm:
                out.append(self._start(state, offset, trigger))
        return out

    def _needed(self, slot: ModelSlot, pairing: Pairing) -> float:
        """The smallest gain that counts: ``margin`` in error (relative for regressors)."""
        if slot.task == "classification":
            return self.margin
        n = len(pairing)
        return self.margin * (pairing.champion_error / n if n else 0.0)

    def _p_value(self, slot: ModelSlot, pairing: Pairing) -> float:
        if slot.task == "classification":
            return mcnemar(pairing.won, pairing.lost)
        n = len(pairing)
        return paired_t(n, pairing.champion_error - pairing.model_error, pairing.diff_sq)

    def _test_name(self, slot: ModelSlot) -> str:
        return "mcnemar" if slot.task == "classification" else "paired_t"

    def _start(self, state: Any, offset: int, trigger: DriftEvent) -> Decision:
        life: LifecycleState = state.lifecycle
        champion = state.champion
        state.versions += 1
        slot = self._new_slot(
            self._settings,
            role="challenger",
            version=state.versions,
            parent=champion.version,
            reason=f"drift_{_level(trigger)}",
            name=f"{self._settings.model.name}-retrained",
        )
        state.slots.append(slot)
        life.shadows.append(_Shadow(Pairing(self.window), offset, False, False, trigger))
        return Decision(
            "challenger_started",
            state.topic,
            state.partition,
            offset,
            slot.name,
            "challenger",
            slot.version,
            champion.version,
            slot.reason,
            trigger=trigger,
        )

    def _drop(self, state: Any, i: int, offset: int, why: str) -> Decision:
        life: LifecycleState = state.lifecycle
        slot = state.slots.pop(i)
        life.shadows.pop(i - 1)
        return self._decision("challenger_dropped", state, slot, offset, why)

    def _decision(self, what: str, state: Any, slot: ModelSlot, offset: int, why: str) -> Decision:
        return Decision(
            what,
            state.topic,
            state.partition,
            offset,
            slot.name,
            slot.role,
            slot.version,
            slot.parent,
            why,
        )

    def _replace(self, state: Any, i: int, offset: int) -> list[Decision]:
        """The model in shadow at ``i`` becomes the champion; the champion goes to shadow.

        After a promotion the old champion stays in shadow as ``previous`` (a rollback
        target); after a rollback the champion rolled back from is retired. A configured
        alternative is never retired: it goes back to being a challenger.
        """
        life: LifecycleState = state.lifecycle
        old = state.champion
        winner = state.slots.pop(i)
        shadow = life.shadows.pop(i - 1)
        pairing = shadow.pairing
        p = self._p_value(winner, pairing)
        gain = pairing.gain()
        rollback = winner.role == "previous"
        if rollback:
            # The previous champion kept learning in shadow: it comes back as a new version.
            state.versions += 1
            winner.version = state.versions
            winner.reason = "rollback"
        else:
            winner.reason = "promotion"
        winner.parent = old.version
        winner.role = "champion"
        old_alternative, life.champion_alternative = life.champion_alternative, shadow.alternative
        # One rollback target at a time: an older previous champion leaves the shadow.
        for j in range(len(state.slots) - 1, 0, -1):
            if state.slots[j].role == "previous":
                self._retire(state, j)
        old.drift = None
        state.slots[0] = winner
        if not rollback:
            old.role = "previous"
            state.slots.insert(1, old)
            life.shadows.insert(0, _Shadow(Pairing(self.window), offset, False, old_alternative))
        elif old_alternative:
            old.role = "challenger"
            state.slots.append(old)
            life.shadows.append(_Shadow(Pairing(self.window), offset, True, True))
        if state.drift is not None:
            winner.drift = state.drift.model_drift()
            state.drift.forget_model_levels()
        life.promoted_at = offset
        # The pairings were against the old champion: start them again.
        for s in life.shadows:
            s.pairing.clear()
        return [
            Decision(
                "rolled_back" if rollback else "promoted",
                state.topic,
                state.partition,
                offset,
                winner.name,
                "champion",
                winner.version,
                winner.parent,
                winner.reason,
                test=self._test_name(winner),
                statistic=p,
                gain=gain,
                window=pairing.offsets(),
                compared=len(pairing),
                trigger=shadow.trigger,
                champion=winner,
            )
        ]

    def _replace_poisoned(self, state: Any, offset: int) -> list[Decision]:
        life: LifecycleState = state.lifecycle
        old = state.champion
        why = f"the champion is poisoned: {old.failure}"
        candidates = [
            i
            for i, s in enumerate(state.slots[1:], 1)
            if s.failure is None and (s.role == "previous" or s.n_learned > 0)
        ]
        if candidates:
            # The previous champion first, then the model in shadow that has learned most.
            best = max(
                candidates,
                key=lambda i: (state.slots[i].role == "previous", state.slots[i].n_learned),
            )
            shadow = life.shadows[best - 1]
            shadow.pairing.clear()
            decisions = self._replace(state, best, offset)
            decisions[0].reason = why
        else:
            state.versions += 1
            fresh = self._new_slot(
                self._settings, version=state.versions, parent=old.version, reason="reset"
            )
            if state.drift is not None:
                fresh.drift = state.drift.model_drift()
                state.drift.forget_model_levels()
            state.slots[0] = fresh
            decisions = [self._decision("rolled_back", state, fresh, offset, why)]
            decisions[0].champion = fresh
        # The poisoned model is not kept in shadow.
        for i in range(len(state.slots) - 1, 0, -1):
            if state.slots[i] is old:
                state.slots.pop(i)
                life.shadows.pop(i - 1)
        return decisions

    def _retire(self, state: Any, i: int) -> None:
        """A previous champion leaves the shadow (a configured alternative stays, as a
        challenger)."""
        life: LifecycleState = state.lifecycle
        shadow = life.shadows[i - 1]
        if shadow.alternative:
            state.slots[i].role = "challenger"
            shadow.permanent = True
        else:
            state.slots.pop(i)
            life.shadows.pop(i - 1)


def _level(ev: DriftEvent) -> str:
    return "warning" if ev.level == "warning" else "alarm"
