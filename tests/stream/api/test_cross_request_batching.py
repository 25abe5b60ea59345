"""Concurrent one-text requests share model batches when batching is on, and never when off."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.fixtures_artifacts import topic_texts
from tests.stream.api.conftest import StartApi, sample, wait_ready

pytestmark = pytest.mark.integration

REQUESTS = 12


async def fire(url: str, texts: list[str]) -> list[str]:
    """Send one request per text, all at once; the labels in request order."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        responses = await asyncio.gather(
            *(client.post("/v1/classify", json={"text": t}) for t in texts)
        )
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json()["results"][0]["classification"]["label"] for r in responses]


def model_calls(url: str) -> tuple[float, float]:
    """(number of classifier calls, items they carried) from /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    count = sample(text, "textroute_api_batch_size_count", model="classifier")
    total = sample(text, "textroute_api_batch_size_sum", model="classifier")
    return count, total


def test_batching_merges_concurrent_requests_and_gives_the_same_answers(
    start_api: StartApi,
) -> None:
    texts, _ = topic_texts(REQUESTS, seed=7)
    # A long wait makes merging certain even on a busy machine; it only bounds latency.
    shared = start_api(ner=None, batching=True, batch_max_size=64, batch_max_wait_ms=200)
    alone = start_api(ner=None, batching=False)
    wait_ready(shared.url)
    wait_ready(alone.url)

    merged_labels = asyncio.run(fire(shared.url, texts))
    single_labels = asyncio.run(fire(alone.url, texts))

    calls, items = model_calls(shared.url)
    assert items == REQUESTS
    assert calls < REQUESTS, "some requests must have shared a model call"

    calls, items = model_calls(alone.url)
    assert (calls, items) == (REQUESTS, REQUESTS), "without batching every request runs alone"

    assert merged_labels == single_labels
