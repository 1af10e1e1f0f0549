"""Lambda's init phase (a cold start): loading a function's modules and clients, then SnapStart's restore.

Those imports allocate hundreds of thousands of objects that live as long as the container, and the garbage
collector, triggered by allocations, walks them again and again while they load: about 20 ms of the register
function's init and 30 ms of the webhook's, measured on python3.13. So in Lambda the collector is off from the
first import of this package (`concierge/__init__.py` calls `begin`) until the function's module calls `end` as its
last line; `end` freezes what init made (`gc.freeze`: later collections skip it) and turns the collector back on.
Outside Lambda (tests, the local stack, tools) nothing changes.

With SnapStart, one snapshot of an initialised container starts many: what must differ per container (the random
generator's state; secrets and connection pools, which a snapshot would carry stale into every one) is reset by
the callbacks given to `after_restore`, which the runtime's `snapshot_restore_py` hooks run after each restore.
"""

from __future__ import annotations

import gc
import os
import random
from collections.abc import Callable
from typing import Any

# Set by Lambda in every execution environment, before the runtime imports the function's module.
_LAMBDA_ENVIRONMENT = "AWS_LAMBDA_FUNCTION_NAME"

_paused = False


def begin() -> None:
    """Turns the collector off for the rest of the init phase, inside Lambda only."""
    global _paused
    if os.environ.get(_LAMBDA_ENVIRONMENT) and gc.isenabled():
        gc.disable()
        _paused = True


def end() -> None:
    """The init phase is over: what it made is frozen out of later collections, and the collector runs again.

    Every function's module calls it last (tests/unit/test_init_phase.py imports each one to check): a container
    left without its collector would keep every reference cycle its invocations make."""
    global _paused
    if _paused:
        gc.freeze()
        gc.enable()
        _paused = False


def _snapshot_hooks() -> Any:
    try:
        # Part of Lambda's Python runtimes (3.12 and later); not installed anywhere else.
        import snapshot_restore_py  # type: ignore[import-not-found]
    except ImportError:
        return None
    return snapshot_restore_py


def after_restore(callback: Callable[[], object]) -> None:
    """Runs `callback` in each container SnapStart restores from the snapshot, before its first invocation.
    Without SnapStart (and outside Lambda) it is never called: nothing was restored."""
    hooks = _snapshot_hooks()
    if hooks is not None:
        hooks.register_after_restore(callback)


# The random module's state is part of the snapshot: every restored container would draw the same "random"
# retry jitter. A new seed from os.urandom per container.
after_restore(random.seed)
