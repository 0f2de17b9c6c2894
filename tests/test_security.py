"""Who may talk to the service: Host names, the API key, CORS, rate limits, admin routes,
security headers, and answers that name no server paths."""

from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from charlm_service.app import create_app
from charlm_service.guard import allowed_hosts_for
from charlm_service.settings import ServiceSettings

from .serving import Server

KEY = "k" * 24


def client(served_dir: Path, base_url: str = "http://127.0.0.1", **settings: object) -> TestClient:
    return TestClient(
        create_app(ServiceSettings(checkpoints_dir=served_dir, **settings)),  # type: ignore[arg-type]
        base_url=base_url,
    )


def test_a_rebinding_page_is_refused_by_its_host_name(served_dir: Path) -> None:
    with client(served_dir, base_url="http://evil.example:8000") as c:
        r = c.post("/predict", json={"model": "alphabet", "text": "abc"})
        assert r.status_code == 400 and r.json()["error"]["type"] == "host_not_allowed"
        assert c.get("/models").status_code == 400
    for host in ("http://localhost:8000", "http://127.0.0.1", "http://[::1]:8000"):
        with client(served_dir, base_url=host) as c:
            assert c.get("/health").status_code == 200, host
    with client(served_dir, base_url="http://charlm.lan", allowed_hosts=["charlm.lan"]) as c:
        assert c.get("/models").status_code == 200


def test_allowed_hosts_rules() -> None:
    assert allowed_hosts_for("127.0.0.1", []) == {"localhost", "127.0.0.1", "::1"}
    assert allowed_hosts_for("10.0.0.5", []) == {"localhost", "127.0.0.1", "::1", "10.0.0.5"}
    assert allowed_hosts_for("0.0.0.0", []) is None  # every interface: any name, by default
    assert allowed_hosts_for("0.0.0.0", ["a.example"]) == {
        "a.example",
        "localhost",
        "127.0.0.1",
        "::1",
    }
    assert allowed_hosts_for("127.0.0.1", ["*"]) is None


def test_the_api_key_guards_every_route_but_health_and_the_page(served_dir: Path) -> None:
    with client(served_dir, api_key=KEY) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/").status_code == 200 and c.get("/static/app.js").status_code == 200
        for method, path in (("GET", "/models"), ("POST", "/predict"), ("GET", "/openapi.json")):
            r = c.request(method, path, json={"model": "alphabet", "text": "abc"})
            assert r.status_code == 401, path
            assert r.json()["error"]["type"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
        wrong = {"Authorization": "Bearer " + "x" * 24}
        assert c.get("/models", headers=wrong).status_code == 401
        right = {"Authorization": f"Bearer {KEY}"}
        r = c.post("/predict", json={"model": "alphabet", "text": "abc"}, headers=right)
        assert r.status_code == 200 and r.json()["next"][0]["char"] == "d"


def test_a_short_api_key_is_refused(served_dir: Path) -> None:
    with pytest.raises(Exception, match="at least 16"):
        ServiceSettings(checkpoints_dir=served_dir, api_key="short")


def test_cors_is_off_unless_configured(served_dir: Path) -> None:
    origin = {"Origin": "https://app.example"}
    with client(served_dir) as c:
        r = c.get("/models", headers=origin)
        assert "access-control-allow-origin" not in r.headers
    with client(served_dir, cors_origins=["https://app.example"]) as c:
        r = c.get("/models", headers=origin)
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        other = c.get("/models", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_reload_needs_a_json_body(served_dir: Path) -> None:
    with client(served_dir) as c:
        form = c.post("/models/reload", data={"x": "1"})  # what a cross-site form can send
        assert form.status_code == 415
        assert c.post("/models/reload").status_code in (415, 422)
        assert c.post("/models/reload", json={}).status_code == 200


def test_the_rate_limit_answers_429_with_retry_after(served_dir: Path) -> None:
    with client(served_dir, rate_limit=0.01) as c:  # a burst of 1, then one per 100 s
        body = {"model": "alphabet", "text": "abc"}
        assert c.post("/predict", json=body).status_code == 200
        r = c.post("/predict", json=body)
        assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1
        assert c.get("/health").status_code == 200  # health is never limited


def test_security_headers(served_dir: Path) -> None:
    with client(served_dir) as c:
        page = c.get("/")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert page.headers["x-frame-options"] == "DENY"
        api = c.get("/health")
        assert api.headers["x-content-type-options"] == "nosniff"
        assert api.headers["referrer-policy"] == "no-referrer"


def test_no_answer_names_a_server_path(tmp_path: Path, alphabet_dir: Path) -> None:
    root = tmp_path / "private" / "checkpoints"
    (root / "broken").mkdir(parents=True)
    (root / "broken" / "checkpoint.json").write_text('{"format_version": 1}')
    with client(root) as c:
        answers = [
            c.get("/models"),
            c.post("/models/reload", json={}),
            c.post("/predict", json={"model": "broken", "text": "a"}),
            c.post("/predict", json={"text": "a"}),
            c.post("/predict", json={"model": "nope", "text": "a"}),
        ]
    for r in answers:
        assert str(tmp_path) not in r.text and "private" not in r.text, r.text


@pytest.fixture(scope="module")
def keyed(served_dir: Path) -> Iterator[Server]:
    s = Server(served_dir, "--api-key", KEY)
    yield s
    s.stop()


@pytest.mark.server
@pytest.mark.slow
def test_the_key_over_real_http(keyed: Server) -> None:
    assert httpx.get(keyed.url + "/models").status_code == 401
    r = httpx.get(keyed.url + "/models", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 200 and [m["name"] for m in r.json()["models"]] == ["alphabet", "notes"]
    evil = httpx.get(keyed.url + "/health", headers={"Host": "rebind.example"})
    assert evil.status_code == 400
