"""template.yaml holds the deployment's promises: layout, architecture, secrets and auth."""

from __future__ import annotations

from devstack.template import REPO_ROOT, functions, load_template, resource_properties


def test_layer_content_is_the_folder_lambda_puts_on_sys_path() -> None:
    """sam build copies the layer's ContentUri into python/, so the package must sit at its top."""
    template = load_template()
    layer = template["Resources"]["CommonLayer"]
    content = REPO_ROOT / layer["Properties"]["ContentUri"]

    assert (content / "concierge" / "__init__.py").is_file()
    assert (content / "requirements.txt").is_file()
    assert layer["Metadata"] == {"BuildMethod": "python3.13", "BuildArchitecture": "arm64"}


def test_every_function_is_python313_on_arm64_with_a_handler() -> None:
    """Each function's code has its lambda_handler and runs on python3.13, arm64."""
    globals_ = load_template()["Globals"]["Function"]

    assert (globals_["Runtime"], globals_["Architectures"]) == ("python3.13", ["arm64"])
    for spec in functions().values():
        module, _, name = spec.handler.rpartition(".")
        assert f"def {name}(" in (spec.code_dir / f"{module}.py").read_text(), spec.logical_id


def test_queue_visibility_covers_six_sender_timeouts() -> None:
    """Lambda's SQS guidance: visibility at least six times the consumer's timeout, or records run twice."""
    sender = functions()["SendWhatsappFunction"]

    assert resource_properties("OutboundQueue")["VisibilityTimeout"] >= 6 * sender.timeout


def test_secrets_are_references_without_defaults() -> None:
    """The webhook's HMAC key is a required SSM parameter name; no secret has a default value."""
    parameters = load_template()["Parameters"]

    assert "Default" not in parameters["WahaWebhookHmacKeyParameter"]
    assert parameters["WahaApiKeyParameter"]["Default"] == ""
    for name, parameter in parameters.items():
        if "Key" in name or "Secret" in name:
            assert parameter.get("Default", "") == "", name


def test_only_the_webhook_is_open_without_an_api_key() -> None:
    """Register and history need the API key; the webhook is guarded by WAHA's HMAC instead."""
    open_routes = []
    for spec in functions().values():
        for event in spec.events.values():
            if event["Type"] == "Api" and not event["Properties"].get("Auth", {}).get("ApiKeyRequired"):
                open_routes.append(event["Properties"]["Path"])

    assert open_routes == ["/api/v1/waha/webhook"]
