"""The HTTP functions' router (concierge.api, on the event dict): the route by method and path, its path
parameters, trailing slashes, and our JSON 404 for a method or path the function does not serve."""

from __future__ import annotations

import pytest

from tests.driver import Concierge


def test_a_path_parameter_reaches_the_handler_and_a_trailing_slash_is_the_same_route(concierge: Concierge) -> None:
    status, guest = concierge.register()
    assert status == 201
    path = f"/api/v1/guests/{guest['user_id']}/messages"

    plain = concierge.request("GuestMessagesFunction", "guest_messages", "GET", path)
    slashed = concierge.request("GuestMessagesFunction", "guest_messages", "GET", path + "/")

    assert plain[0] == slashed[0] == 200
    assert plain[1]["user_id"] == slashed[1]["user_id"] == guest["user_id"]
    assert [message["id"] for message in plain[1]["messages"]] == [message["id"] for message in slashed[1]["messages"]]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/guests/00000000-0000-4000-8000-000000000000/messages"),  # another method
        ("GET", "/api/v1/guests/00000000-0000-4000-8000-000000000000/messages/more"),  # a longer path
        ("GET", "/api/v1/guests//messages"),  # an empty path parameter
        ("GET", "/api/v1/health"),  # another function's route
    ],
)
def test_what_the_function_does_not_serve_is_our_json_404(concierge: Concierge, method: str, path: str) -> None:
    status, answer = concierge.request("GuestMessagesFunction", "guest_messages", method, path)

    assert status == 404
    assert answer == {"error": "not_found", "message": "no such route", "details": []}
