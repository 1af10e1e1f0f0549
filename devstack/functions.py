"""Loads the template's Lambda handlers into this process and invokes them the way Lambda would."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from devstack.lambda_context import LambdaContext
from devstack.template import REPO_ROOT, FunctionSpec

Handler = Callable[[dict[str, Any], Any], Any]

# The layer's content directory: Lambda mounts it at /opt/python, which is on the runtime's sys.path.
LAYER_PYTHON_DIR = REPO_ROOT / "layers" / "common" / "python"


class InvocationError(RuntimeError):
    """The invocation failed the way a real Lambda invoke fails: the caller sees an error, not a result."""


class FunctionTimedOut(InvocationError):
    """The handler ran past its timeout; Lambda would have stopped it and reported an error."""


class ResultNotSerializable(InvocationError):
    """The handler returned something Lambda cannot turn into JSON."""


def ensure_layer_on_path() -> None:
    """Makes `import concierge` work as it does in Lambda, where the layer's python/ is on sys.path."""
    layer = str(LAYER_PYTHON_DIR)
    if layer not in sys.path:
        sys.path.insert(0, layer)


def _handler_location(spec: FunctionSpec) -> tuple[Path, str]:
    module_path, _, attribute = spec.handler.rpartition(".")
    return spec.code_dir / (module_path.replace(".", "/") + ".py"), attribute


def modules_loaded_from(directory: Path) -> dict[str, ModuleType]:
    """The imported modules whose files lie under directory, by name."""
    found = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and Path(file).resolve().is_relative_to(directory):
            found[name] = module
    return found


def load_handler(spec: FunctionSpec) -> Handler:
    """Imports one function's handler by file path, under a module name unique to its logical id."""
    ensure_layer_on_path()
    path, attribute = _handler_location(spec)
    if not path.is_file():
        raise FileNotFoundError(f"{spec.logical_id}: handler module {path} does not exist")
    module_name = f"concierge_fn_{spec.logical_id}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"{spec.logical_id}: cannot load {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    code_dir = str(spec.code_dir)
    # Lambda puts the function's own folder on sys.path, so its sibling modules import by bare name.
    sys.path.insert(0, code_dir)
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    finally:
        sys.path.remove(code_dir)
        # Every function here runs in one process: forget bare-named sibling modules (a `models.py` in
        # two functions) so the next function imports its own instead of finding this one's in the cache.
        for name in modules_loaded_from(spec.code_dir.resolve()):
            if name != module_name:
                del sys.modules[name]
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise AttributeError(f"{spec.logical_id}: {path} has no callable {attribute!r}")
    return handler


def load_handlers(function_specs: Mapping[str, FunctionSpec] | Iterable[FunctionSpec]) -> dict[str, Handler]:
    """The handler of every given function, keyed by logical id. Set the functions' environment first:
    handler modules may read it at import time, as they do on a Lambda cold start."""
    specs = function_specs.values() if isinstance(function_specs, Mapping) else function_specs
    return {spec.logical_id: load_handler(spec) for spec in specs}


# Lambda runs one invocation per container at a time, and the handlers keep per-invocation state in module
# globals (Powertools' resolver holds the current event, its Logger the function's context). In one process
# the local stack must run them one at a time too, or concurrent requests read each other's event.
_one_invocation_at_a_time = threading.Lock()


def invoke(handler: Handler, event: dict[str, Any], context: LambdaContext) -> Any:
    """Calls the handler with Lambda's contract: the event arrives as fresh JSON and the result leaves as JSON.

    Exceptions from the handler propagate unchanged; a late or unserialisable result raises InvocationError."""
    # Lambda's runtime decodes the event from JSON, so the handler never shares objects with the caller.
    with _one_invocation_at_a_time:
        result = handler(json.loads(json.dumps(event)), context)
    if context.timed_out():
        raise FunctionTimedOut(
            f"{context.function_name} ran longer than its timeout; Lambda would have stopped it (Task timed out)"
        )
    try:
        return json.loads(json.dumps(result))
    except (TypeError, ValueError) as error:
        raise ResultNotSerializable(f"{context.function_name} returned a result that is not JSON: {error}") from error
