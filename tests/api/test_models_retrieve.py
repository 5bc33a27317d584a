"""``GET /v1/models/{id}`` on a real server: through the official SDK and as raw HTTP."""

from __future__ import annotations

import json

import openai
import pytest

from modelmux.config.providers import MockProviderConfig
from modelmux.config.schema import Config
from modelmux.errors import ModelNotFound
from tests.api.helpers import serving
from tests.observability.helpers import request

CONFIG = Config(provider=[
    MockProviderConfig(name="local", models=["mock", "org/model-x"]),
    MockProviderConfig(name="spare", models=["mock", "other"]),
])


def test_sdk_retrieves_listed_models_with_their_provider(run) -> None:
    async def main() -> None:
        async with serving(CONFIG) as port:
            client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1",
                                        api_key="unused", max_retries=0, timeout=10)
            async with client:
                listed = {m.id: m for m in (await client.models.list()).data}
                for name in ("mock", "org/model-x", "other"):
                    model = await client.models.retrieve(name)  # the SDK sends "/" as %2F
                    assert model.model_dump() == listed[name].model_dump()
                assert (await client.models.retrieve("other")).owned_by == "spare"
                deployment = await client.models.retrieve("spare/mock")
                assert (deployment.id, deployment.owned_by) == ("spare/mock", "spare")
                with pytest.raises(openai.NotFoundError) as info:
                    await client.models.retrieve("gpt-nope")
                assert info.value.code == "model_not_found"  # type: ignore[attr-defined]
                assert info.value.param == "model"  # type: ignore[attr-defined]

    run(main())


@pytest.mark.parametrize("path", ["/v1/models/org/model-x", "/v1/models/org%2Fmodel-x",
                                  "/v1/models/local/org/model-x"])
def test_ids_with_a_slash_work_raw_or_escaped(run, path: str) -> None:
    async def main() -> None:
        async with serving(CONFIG) as port:
            status, headers, body = await request(port, "GET", path)
        assert status == 200 and headers["content-type"] == "application/json"
        answer = json.loads(body)
        assert answer["object"] == "model" and answer["owned_by"] == "local"
        assert answer["id"] == path.removeprefix("/v1/models/").replace("%2F", "/")
        assert isinstance(answer["created"], int)

    run(main())


@pytest.mark.parametrize("model", ["nope", "local/nope", "nobody/mock", "MOCK"])
def test_unknown_ids_are_404_model_not_found(run, model: str) -> None:
    async def main() -> None:
        async with serving(CONFIG) as port:
            status, _, body = await request(port, "GET", f"/v1/models/{model}")
            assert status == 404
            error = json.loads(body)["error"]
            assert error == ModelNotFound(error["message"], param="model").to_dict()["error"]
            assert model in error["message"]
            status, _, _ = await request(port, "GET", "/v1/models/mock")
            assert status == 200  # and it keeps serving

    run(main())


def test_other_methods_and_an_empty_id(run) -> None:
    async def main() -> None:
        async with serving(CONFIG) as port:
            status, headers, _ = await request(port, "POST", "/v1/models/mock", {})
            assert (status, headers["allow"]) == (405, "GET, OPTIONS")
            assert (await request(port, "HEAD", "/v1/models/mock"))[0] == 200
            status, _, body = await request(port, "GET", "/v1/models/")
            assert (status, json.loads(body)["error"]["code"]) == (404, "unknown_url")
            for name in ("a", "b", "c"):
                await request(port, "GET", f"/v1/models/{name}")
            _, _, scrape = await request(port, "GET", "/metrics")
        lines = [line for line in scrape.decode().splitlines()
                 if line.startswith("modelmux_requests_total") and "/v1/models/" in line]
        assert lines and all('route="/v1/models/{id}"' in line for line in lines)

    run(main())
