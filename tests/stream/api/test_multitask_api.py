"""The API serving one classify-and-tag artifact: /v1/route makes one model call, not two."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.stream.api.conftest import StartApi, sample, wait_ready
from tests.stream.api.test_http import EMAIL


def test_route_with_a_classify_and_tag_model_runs_it_once_per_batch(
    start_api: StartApi, tiny_multitask_artifact: Path
) -> None:
    server = start_api(classifier=tiny_multitask_artifact, ner=tiny_multitask_artifact)
    wait_ready(server.url)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/v1/route", json={"message": EMAIL})
        assert response.status_code == 200, response.text
        [result] = response.json()["results"]
        routing = result["routing"]
        assert routing["classifier"]["name"] == routing["ner"]["name"] == "tiny-multitask"
        assert routing["category"] in {"World", "Sports", "Business", "Sci/Tech"}
        model_text = f"{EMAIL['subject']}\n{EMAIL['body']}"
        for entity in routing["entities"]:
            assert model_text[entity["start"] : entity["end"]] == entity["text"]
        metrics = client.get("/metrics").text
    assert sample(metrics, "textroute_api_batch_size_count", model="multitask") == 1.0
    assert sample(metrics, "textroute_api_batch_size_count", model="classifier") == 0.0
    assert sample(metrics, "textroute_api_batch_size_count", model="ner") == 0.0
