"""Validation of block options: every bad value raises ValueError naming the valid choices."""
import math
from collections.abc import Hashable


def check_choice(what: str, value, choices):
    """Return `value` if it is one of `choices` (a dict or sequence), else raise ValueError."""
    if not isinstance(value, Hashable) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {what} {value!r}; choose one of {valid}")
    return value


def reduced_channels(channels: int, ratio: int) -> int:
    """Hidden width C // r of an excitation MLP (SE paper, Sec. 3.2); at least one unit."""
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    if not isinstance(ratio, int) or not 1 <= ratio <= channels:
        raise ValueError(f"ratio must be an integer from 1 to channels ({channels}), got {ratio!r}")
    return channels // ratio


def eca_kernel_size(channels: int, gamma: float = 2, b: float = 1) -> int:
    """ECA-Net Eq. 12: k = |(log2 C + b) / gamma|_odd, the odd number at or just above the value."""
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    for name, value in (("gamma", gamma), ("b", b)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma!r}")
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


def check_odd_kernel(what: str, k, allowed=None) -> int:
    """An odd positive kernel size, optionally restricted to `allowed`."""
    if allowed is not None:
        return check_choice(what, k, allowed)
    if not isinstance(k, int) or k < 1 or k % 2 == 0:
        raise ValueError(f"{what} must be an odd positive integer (1, 3, 5, ...), got {k!r}")
    return k
