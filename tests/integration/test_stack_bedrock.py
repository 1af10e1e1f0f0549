"""`make run`'s Bedrock: the local stack starts the Converse simulator and points the functions' Bedrock Runtime
client at it (AWS_ENDPOINT_URL_BEDROCK_RUNTIME), while every other AWS call still goes to moto; AI_MODEL_ID set
in the environment reaches the answering function, as the README's configuration table says."""

from __future__ import annotations

import os

import pytest

from devstack.converse_sim import ConverseSimulator
from devstack.stack import LocalStack, StackConfig

pytestmark = pytest.mark.integration

MODEL_ID = "amazon.nova-lite-v1:0"


def test_the_stack_sends_the_functions_bedrock_calls_to_its_converse_simulator() -> None:
    config = StackConfig(api_port=0, moto_port=0, waha_sim_port=0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AI_MODEL_ID", MODEL_ID)
        patch.delenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", raising=False)
        with LocalStack(config) as stack:
            assert isinstance(stack.converse_sim, ConverseSimulator)
            environment = stack.function_environment
            assert environment["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] == stack.converse_sim.url
            assert environment["AI_MODEL_ID"] == MODEL_ID
            assert os.environ["AWS_ENDPOINT_URL"] == stack.aws_endpoint != stack.converse_sim.url

            # Imported here: the stack loaded the layer afresh, as a cold start would.
            from concierge.answers import bedrock
            from concierge.answers.knowledge import configured

            knowledge = configured()
            assert knowledge is not None
            question = knowledge.faqs[0].questions[knowledge.languages[0]][0]
            verdict = bedrock.classify(question, knowledge, [], environment["AI_MODEL_ID"])
            assert (verdict.faqs, verdict.engine) == ((knowledge.faqs[0].id,), "bedrock")
            assert [request["model_id"] for request in stack.converse_sim.requests()] == [MODEL_ID]


def test_without_a_model_the_stack_leaves_bedrock_off_and_a_given_endpoint_is_used() -> None:
    with ConverseSimulator() as elsewhere, pytest.MonkeyPatch.context() as patch:
        patch.delenv("AI_MODEL_ID", raising=False)
        config = StackConfig(api_port=0, moto_port=0, waha_sim_port=0, bedrock_endpoint_url=elsewhere.url)
        with LocalStack(config) as stack:
            assert stack.converse_sim is None
            assert stack.function_environment["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] == elsewhere.url
            assert not stack.function_environment.get("AI_MODEL_ID")
