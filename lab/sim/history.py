"""Bounded ring buffers: a run of a million steps keeps the same memory as one of ten thousand."""

from __future__ import annotations

import numpy as np


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


STEP_SERIES = ("step", "lr", "loss", "train_acc", "grad_norm")
TRACE_SERIES = ("trace_step", "w_a", "w_b")  # two first-layer weights, after every step (and step 0)
VAL_SERIES = ("val_step", "val_loss", "val_acc")


class History:
    """Per-step scalars and the sparser validation scalars."""

    def __init__(self, capacity: int = 50_000, val_capacity: int = 5_000):
        self.series = {name: Ring(capacity) for name in STEP_SERIES}
        self.series.update({name: Ring(val_capacity) for name in VAL_SERIES})
        self.series.update({name: Ring(capacity) for name in TRACE_SERIES})

    def record_steps(self, first_step: int, lr, loss, train_acc, grad_norm) -> None:
        n = len(loss)
        self.series["step"].extend(np.arange(first_step, first_step + n))
        for name, values in (("lr", lr), ("loss", loss), ("train_acc", train_acc), ("grad_norm", grad_norm)):
            self.series[name].extend(values)

    def record_trace(self, first_step: int, values: np.ndarray) -> None:
        """values (n, 2): the traced weights after steps first_step .. first_step + n - 1."""
        if values.shape[1] < 2:
            return
        self.series["trace_step"].extend(np.arange(first_step, first_step + values.shape[0]))
        self.series["w_a"].extend(values[:, 0])
        self.series["w_b"].extend(values[:, 1])

    def record_val(self, step: int, loss: float, acc: float) -> None:
        for name, value in (("val_step", step), ("val_loss", loss), ("val_acc", acc)):
            self.series[name].extend([value])

    def replace_last_val(self, loss: float, acc: float) -> None:
        """Overwrite the last validation record's values (same step)."""
        self.series["val_loss"].replace_last(loss)
        self.series["val_acc"].replace_last(acc)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: ring.values() for name, ring in self.series.items()}
