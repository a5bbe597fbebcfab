"""Gradual pruning's timetable, shared by unstructured (prune) and structured (channel) pruning."""

from __future__ import annotations


def cubic_schedule(amount: float, steps: int) -> list[float]:
    """Sparsity after each of `steps` prune steps: fast at first, slow near the target (Zhu & Gupta 2017)."""
    return [amount * (1 - (1 - k / steps) ** 3) for k in range(1, steps + 1)]


def steps_due(step: int, total_steps: int, ramp: float, n_steps: int) -> list[int]:
    """The prune steps (0-based) that fall on optimizer step `step`: they are spread evenly over the first
    `ramp` fraction of fine-tuning, the rest recovers. A ramp shorter than n_steps optimizer steps puts
    several on one step."""
    ramp_steps = max(1, int(ramp * total_steps))
    return [k for k in range(n_steps) if step == k * ramp_steps // n_steps]
