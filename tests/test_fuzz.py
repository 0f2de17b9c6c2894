"""Generated requests to every route of a real server: never a 5xx, always the schema."""

from pathlib import Path

import pytest

from .fuzzing import fuzz
from .serving import Server


@pytest.mark.server
@pytest.mark.slow
def test_every_route_answers_generated_requests_within_its_schema(served_dir: Path) -> None:
    server = Server(served_dir, "--max-generate-length", "500", "--max-text-chars", "2000")
    try:
        seen = fuzz(server.url, examples=25)
    finally:
        server.stop()
    routes = {route for route, _ in seen}
    assert len(routes) == 18 and sum(seen.values()) >= 200
    assert all(status < 500 for _, status in seen)
    assert any(status == 200 for route, status in seen if route == "POST /predict")
