"""Forward hooks for one call on a model that other threads may be running at the same time.

The torch-cam pattern (register hooks, run, remove them in `finally`) made safe to share: the
hooks act only while the context that registered them runs the model -- a `ContextVar` holds the
call's token, so another thread's forward pass through the same modules sees the hooks and does
nothing -- and they are removed when the call ends, also after an exception.
"""
from contextvars import ContextVar

from torch import nn

_running: ContextVar[object | None] = ContextVar("attention_lens_call", default=None)


class CallHooks:
    """`with CallHooks() as call:` register hooks with `call.add`, have them act only when
    `call.mine()`, and run the model as this call with `call.run(model, x)`."""

    def __init__(self):
        self._token, self._handles = object(), []

    def __enter__(self) -> "CallHooks":
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()

    def add(self, module: nn.Module, hook) -> None:
        self._handles.append(module.register_forward_hook(hook))

    def mine(self) -> bool:
        """Whether the forward pass running now is this call's."""
        return _running.get() is self._token

    def run(self, model: nn.Module, x):
        """`model(x)` as this call, with `x` moved to the model's device."""
        x = on_model_device(model, x)
        reset = _running.set(self._token)
        try:
            return model(x)
        finally:
            _running.reset(reset)


def on_model_device(model: nn.Module, x):
    """`x` on the device of the model's parameters (a GPU model takes the CPU tensors callers make)."""
    parameter = next(model.parameters(), None)
    return x if parameter is None else x.to(parameter.device)
