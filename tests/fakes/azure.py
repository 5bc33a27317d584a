"""A fake Azure OpenAI resource: the OpenAI fake under Azure's paths, key header and errors.

Per Azure OpenAI's data-plane REST reference: ``POST /openai/deployments/{deployment}/{kind}
?api-version={v}`` (``kind``: chat/completions, embeddings, completions), or the GA v1 API
``POST /openai/v1/{kind}`` with the deployment as ``model``; the key in ``api-key``. An unknown deployment is a 404
``DeploymentNotFound``, a missing/unknown api-version a 404 ``Resource not found``, a bad key a
401. Fault ``content_filter`` refuses the prompt the way Azure does (400, code
``content_filter``, ``innererror`` with the filter results).
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.answers import TEXT, Answer
from tests.fakes.http import Reply, Request, json_reply
from tests.fakes.openai import PATHS, FakeOpenAI

FILTERED = {
    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
               "management policy. Please modify your prompt and retry.",
    "type": None, "param": "prompt", "code": "content_filter", "status": 400,
    "innererror": {"code": "ResponsibleAIPolicyViolation",
                   "content_filter_result": {"hate": {"filtered": True, "severity": "high"}}},
}


class FakeAzure(FakeOpenAI):
    """Serves ``deployments`` of one resource at ``api_version`` (``v1`` paths always work)."""

    def __init__(self, *, key: str = "azure-key", deployments: tuple[str, ...] = ("gpt-4o-prod",),
                 api_version: str = "2024-10-21", answer: Answer = TEXT,
                 retry_after: str = "0", tokens: set[str] | None = None) -> None:
        """``tokens``: accept these Entra ID bearer tokens instead of the key (as Azure does
        for a resource with Entra ID auth)."""
        super().__init__(answer=answer, retry_after=retry_after)
        self.key = key
        self.tokens = tokens
        self.deployments = deployments
        self.api_version = api_version

    def route(self, request: Request) -> tuple[str, str | None] | Reply:
        url = urlsplit(request.path)
        parts = url.path.split("/")
        kind = {path: name for name, path in PATHS.items()}
        if self.tokens is not None:
            bearer = request.headers.get("authorization", "")
            if bearer.removeprefix("Bearer ") not in self.tokens:
                return json_reply(401, {"error": {"code": "401", "message": "Access denied "
                                                  "due to invalid token."}})
        elif request.headers.get("api-key") != self.key:
            return json_reply(401, {"error": {"code": "401", "message": "Access denied due to "
                                              "invalid subscription key or wrong API endpoint."}})
        if url.path.startswith("/openai/v1/"):
            found = kind.get(url.path[len("/openai/v1"):])
            if found is not None and request.method == "POST":
                return found, None
        elif len(parts) >= 5 and parts[1:3] == ["openai", "deployments"]:
            found = kind.get("/" + "/".join(parts[4:]))
            versions = parse_qs(url.query).get("api-version")
            if found is not None and versions == [self.api_version]:
                deployment = unquote(parts[3])
                if deployment not in self.deployments:
                    return json_reply(404, {"error": {
                        "code": "DeploymentNotFound",
                        "message": "The API deployment for this resource does not exist."}})
                return found, deployment
        return json_reply(404, {"error": {"code": "404", "message": "Resource not found"}})

    def answer_to(self, request: Request, kind: str, path_model: str | None) -> Reply:
        if self.faults and self.faults[0] == "content_filter":
            self.faults.popleft()
            self.raw_bodies.append(request.body)
            return json_reply(400, {"error": FILTERED})
        return super().answer_to(request, kind, path_model)
