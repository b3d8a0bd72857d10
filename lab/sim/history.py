"""Bounded history: a run of a million steps keeps the same memory as one of ten thousand.

Scalars of every step go to ring buffers (the most recent `capacity` steps).  Every
layer's statistics go to a LayerTimeline: records at a fixed cadence of training steps,
at most `capacity` of them, thinned (every other one kept, cadence doubled) whenever it
fills, so it always spans step 0 to now.
"""

from __future__ import annotations

import numpy as np

from lab import vocabulary as V

from .snapshot import Record, Timeline

TIMELINE_CAPACITY = 256  # records per run: wider than any terminal's heat map, ~1 MB for a 2-layer net


class Ring:
    """A fixed-capacity float64 buffer that keeps the most recent values in order."""

    def __init__(self, capacity: int):
        self._buf = np.full(capacity, np.nan)
        self._n = 0  # values ever appended

    @property
    def capacity(self) -> int:
        return self._buf.size

    def __len__(self) -> int:
        return min(self._n, self._buf.size)

    def extend(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64).ravel()
        cap = self._buf.size
        if values.size >= cap:
            self._buf[:] = values[-cap:]
            self._n += values.size
            # after a full overwrite, index (n % cap) must be the oldest: rotate to match
            self._buf = np.roll(self._buf, self._n % cap)
            return
        start = self._n % cap
        end = start + values.size
        if end <= cap:
            self._buf[start:end] = values
        else:
            split = cap - start
            self._buf[start:] = values[:split]
            self._buf[:end - cap] = values[split:]
        self._n += values.size

    def values(self) -> np.ndarray:
        """The kept values, oldest first (a copy)."""
        cap = self._buf.size
        if self._n <= cap:
            return self._buf[:self._n].copy()
        start = self._n % cap
        return np.concatenate([self._buf[start:], self._buf[:start]])

    def last(self) -> float:
        return float(self._buf[(self._n - 1) % self._buf.size]) if self._n else float("nan")

    def replace_last(self, value: float) -> None:
        self._buf[(self._n - 1) % self._buf.size] = value


STEP_SERIES = (V.STEP, *V.series_metrics("step"))  # lr, loss, train_acc, grad_norm
TRACE_SERIES = ("trace_step", "w_a", "w_b")  # two first-layer weights, after every step (and step 0)
VAL_SERIES = (V.VAL_STEP, *V.series_metrics("eval"))  # val_loss, val_acc


class History:
    """Per-step scalars and the sparser validation scalars."""

    def __init__(self, capacity: int = 50_000, val_capacity: int = 5_000):
        self.series = {name: Ring(capacity) for name in STEP_SERIES}
        self.series.update({name: Ring(val_capacity) for name in VAL_SERIES})
        self.series.update({name: Ring(capacity) for name in TRACE_SERIES})

    def record_steps(self, first_step: int, lr, loss, train_acc, grad_norm) -> None:
        n = len(loss)
        self.series[V.STEP].extend(np.arange(first_step, first_step + n))
        for name, values in ((V.LR, lr), (V.LOSS, loss), (V.TRAIN_ACC, train_acc), (V.GRAD_NORM, grad_norm)):
            self.series[name].extend(values)

    def record_trace(self, first_step: int, values: np.ndarray) -> None:
        """values (n, 2): the traced weights after steps first_step .. first_step + n - 1."""
        if values.shape[1] < 2:
            return
        self.series["trace_step"].extend(np.arange(first_step, first_step + values.shape[0]))
        self.series["w_a"].extend(values[:, 0])
        self.series["w_b"].extend(values[:, 1])

    def record_val(self, step: int, loss: float, acc: float) -> None:
        for name, value in ((V.VAL_STEP, step), (V.VAL_LOSS, loss), (V.VAL_ACC, acc)):
            self.series[name].extend([value])

    def replace_last_val(self, loss: float, acc: float) -> None:
        """Overwrite the last validation record's values (same step)."""
        self.series[V.VAL_LOSS].replace_last(loss)
        self.series[V.VAL_ACC].replace_last(acc)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: ring.values() for name, ring in self.series.items()}


def starting_cadence(steps: int, capacity: int) -> int:
    """Steps between records at the start of a run of `steps` steps: the fewest that fit the
    run in `capacity` records (step 0 included), or up to twice that if it divides `steps`,
    so that the run's last step is a record too."""
    steps = max(1, steps)
    need = max(1, -(-steps // max(1, capacity - 1)))
    for every in range(need, 2 * need + 1):
        if steps % every == 0:
            return every
    return need


class LayerTimeline:
    """Records of every layer's statistics at steps 0, every, 2*every, ... (bounded).

    When a record is due and `capacity` are kept, every other one is dropped (those at odd
    multiples of `every`) and `every` doubles: memory stays bounded, the kept records keep
    their exact values, and the records still span step 0 to now, evenly spaced.  The
    simulation ends its compiled chunks at record steps (`steps_to_next`), so each record is
    of exactly its step, whatever the chunking.  capacity 0 records nothing.
    """

    def __init__(self, capacity: int = TIMELINE_CAPACITY, every: int = 1):
        if capacity < 0 or every < 1:
            raise ValueError(f"capacity must be >= 0 and every >= 1 (got {capacity}, {every})")
        self.capacity = 0 if capacity == 0 else max(2, capacity + capacity % 2)  # even: thinning keeps the grid
        self.every = every
        self._records: list[Record] = []
        self._frozen: Timeline | None = None

    @property
    def recording(self) -> bool:
        return self.capacity > 0

    def __len__(self) -> int:
        return len(self._records)

    @property
    def last_step(self) -> int | None:
        return self._records[-1].step if self._records else None

    def due(self, step: int) -> bool:
        """Whether `step` is a record step."""
        return self.recording and step % self.every == 0

    def steps_to_next(self, step: int) -> int:
        """Steps from `step` to the next record step after it."""
        return self.every - step % self.every

    def add(self, record: Record) -> None:
        """Keep `record` (a record step's).  A second record of the latest step replaces it:
        the state changed at that step before training went on."""
        if not self.recording:
            return
        if self._records and self._records[-1].step == record.step:
            self._records[-1] = record
        else:
            if self._records and record.step <= self._records[-1].step:
                raise ValueError(f"record of step {record.step} after one of step {self._records[-1].step}")
            while len(self._records) >= self.capacity:
                self.every *= 2
                self._records = [r for r in self._records if r.step % self.every == 0]
            if record.step % self.every:
                return  # not on the thinned grid (never, when records arrive at every record step)
            self._records.append(record)
        self._frozen = None

    def freeze(self) -> Timeline:
        """An immutable view (cached until the next change): a tuple of the shared records."""
        if self._frozen is None:
            self._frozen = Timeline(tuple(self._records), self.every if self.recording else 0, self.capacity)
        return self._frozen
