"""Reads template.yaml, so that local resources and routes come from the one definition we deploy."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from samcli.yamlhelper import parse_yaml_file

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = REPO_ROOT / "template.yaml"


@cache
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    return parse_yaml_file(str(path))


def resources_of_type(resource_type: str, template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    template = template or load_template()
    return {name: resource for name, resource in template["Resources"].items() if resource["Type"] == resource_type}


def resource_properties(logical_id: str, template: dict[str, Any] | None = None) -> dict[str, Any]:
    template = template or load_template()
    return template["Resources"][logical_id]["Properties"]


def parameter_default(name: str, template: dict[str, Any] | None = None) -> str | None:
    template = template or load_template()
    return template["Parameters"][name].get("Default")


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_dir: Path
    handler: str
    timeout: int
    memory_size: int
    environment: dict[str, Any]
    events: dict[str, dict[str, Any]]
    # ReservedConcurrentExecutions: at most this many invocations at once (None: only the account's limit).
    reserved_concurrency: int | None = None


def functions(template: dict[str, Any] | None = None) -> dict[str, FunctionSpec]:
    """Every AWS::Serverless::Function with the template's Globals applied."""
    template = template or load_template()
    global_props = template.get("Globals", {}).get("Function", {})
    specs = {}
    for logical_id, resource in resources_of_type("AWS::Serverless::Function", template).items():
        props = resource["Properties"]
        environment = dict(global_props.get("Environment", {}).get("Variables", {}))
        environment.update(props.get("Environment", {}).get("Variables", {}))
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_dir=REPO_ROOT / props["CodeUri"],
            handler=props.get("Handler", global_props.get("Handler", "app.lambda_handler")),
            timeout=int(props.get("Timeout", global_props.get("Timeout", 3))),
            memory_size=int(props.get("MemorySize", global_props.get("MemorySize", 128))),
            environment=environment,
            events=props.get("Events", {}),
            reserved_concurrency=_optional_int(
                props.get("ReservedConcurrentExecutions", global_props.get("ReservedConcurrentExecutions"))
            ),
        )
    return specs
