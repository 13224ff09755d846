"""The OpenAPI schema: valid, every API route and method in it (tus included, with its headers),
error bodies and auth schemes; docs served from our own static files; schemathesis over the API."""

from __future__ import annotations

import re
import subprocess
import uuid
from html.parser import HTMLParser

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView

from tests.factories import make_superuser, make_video
from tests.unpuzzle.api_fuzz import schemathesis_command, schemathesis_env
from unpuzzle.tokens import api_token_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_validates_with_no_warnings(tmp_path):
    # --fail-on-warn: an endpoint drf-spectacular cannot describe is an error, not a silent gap.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3.")


def _api_routes(resolver: URLResolver | None = None, prefix: str = "") -> list[tuple[str, type, set[str]]]:
    """(sample URL, view class, methods) for every route under /api/v1/, as Django routes them."""
    routes = []
    for entry in (resolver or get_resolver()).url_patterns:
        pattern = prefix + _sample(str(entry.pattern))
        if isinstance(entry, URLResolver):
            routes += _api_routes(entry, pattern)
        elif isinstance(entry, URLPattern) and pattern.startswith("api/v1/"):
            callback = entry.callback
            cls = getattr(callback, "cls", None)
            if cls is None or not issubclass(cls, APIView):
                continue
            actions = getattr(callback, "actions", None)
            if actions:
                # DRF adds "head" to a viewset's actions on its first GET: the implicit HEAD, not an endpoint.
                methods = {m.upper() for m in actions if m != "head"}
            else:
                methods = {m.upper() for m in cls.http_method_names if m != "options" and hasattr(cls, m)}
                if cls.options is not APIView.options:  # a view's own OPTIONS (tus discovery) is an endpoint
                    methods.add("OPTIONS")
            routes.append(("/" + pattern, cls, methods))
    return routes


def _sample(pattern: str) -> str:
    """A concrete path for a route pattern (path converters and regex groups filled with a UUID)."""
    sample = re.sub(r"\(\?P<\w+>[^)]*\)", str(uuid.uuid4()), pattern)
    sample = re.sub(r"<(?:\w+:)?\w+>", str(uuid.uuid4()), sample)
    return sample.lstrip("^").replace("/?$", "/").rstrip("$").replace("\\.", ".")


def test_every_api_route_and_method_is_in_the_schema(schema):
    templates = {re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"): path for path in schema["paths"]}
    routes = _api_routes()
    assert len(routes) >= 15
    missing = []
    for url, cls, methods in routes:
        matches = [path for regex, path in templates.items() if regex.match(url)]
        documented = {m.upper() for path in matches for m in schema["paths"][path]}
        missing += [f"{method} {url} ({cls.__name__})" for method in sorted(methods - documented)]
    assert missing == []


def _parameters(schema, path, method) -> dict[str, dict]:
    return {p["name"]: p for p in schema["paths"][path][method].get("parameters", [])}


def test_tus_requests_are_described_with_their_headers_and_metadata_keys(schema):
    paths = schema["paths"]
    assert {"options", "post", "get"} <= set(paths["/api/v1/uploads/"])
    detail = next(p for p in paths if p.startswith("/api/v1/uploads/{"))
    assert {"head", "patch", "delete", "get"} <= set(paths[detail])

    create = _parameters(schema, "/api/v1/uploads/", "post")
    assert create["Tus-Resumable"]["required"] is True and create["Tus-Resumable"]["in"] == "header"
    assert {"Upload-Length", "Upload-Defer-Length", "Upload-Metadata", "Upload-Concat", "Upload-Checksum"} <= set(
        create
    )
    for key in ("`filename`", "`filetype`", "`title`"):
        assert key in create["Upload-Metadata"]["description"]
    post = paths["/api/v1/uploads/"]["post"]
    assert "application/offset+octet-stream" in post["requestBody"]["content"]
    assert {"Location", "Upload-Offset", "Tus-Resumable"} <= set(post["responses"]["201"]["headers"])

    assert {"Upload-Offset", "Upload-Length", "Upload-Metadata"} <= set(
        paths[detail]["head"]["responses"]["200"]["headers"]
    )
    patch = paths[detail]["patch"]
    assert _parameters(schema, detail, "patch")["Upload-Offset"]["required"] is True
    assert {"204", "409", "410", "460"} <= set(patch["responses"])
    assert patch["responses"]["409"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}

    options = paths["/api/v1/uploads/"]["options"]
    assert options.get("security", []) in ([], [{}]), "feature discovery needs no authentication"
    assert {"Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm"} <= set(
        options["responses"]["204"]["headers"]
    )


def test_error_bodies_and_auth_schemes_are_documented(schema):
    assert set(schema["components"]["schemas"]["Error"]["properties"]) == {"detail", "code"}
    assert {"apiToken", "tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])
    video = next(p for p in schema["paths"] if p.startswith("/api/v1/videos/{") and p.count("/") == 5)
    assert {"401", "403", "404"} <= set(schema["paths"][video]["get"]["responses"])
    token = schema["paths"]["/api/v1/auth/token/"]["post"]
    assert {"201", "400", "429"} <= set(token["responses"])


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.urls.append(attributes["src"])
        if tag == "link" and attributes.get("href"):
            self.urls.append(attributes["href"])


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_use_only_our_own_static_files(client, settings, page):
    response = client.get(page)
    assert response.status_code == 200
    assets = _Assets()
    assets.feed(response.content.decode())
    scripts = [url for url in assets.urls if url.endswith(".js")]
    assert scripts, "the page loads its viewer from a script"
    for url in assets.urls:
        assert url.startswith(settings.STATIC_URL), f"{page} loads {url} from outside this server"
        assert finders.find(url.removeprefix(settings.STATIC_URL)), f"{url} is not among the static files"
    # The viewer's bootstrap script reads the schema from this server, too.
    assert b"https://cdn" not in response.content


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_schema_violation(live_server, transactional_db, tmp_path):
    """A short property-based run over every operation as a superuser, who reaches them all
    (bench/api_fuzz.py runs a long one, as a superuser and as an instructor)."""
    admin = make_superuser()
    make_video(owner=admin, title="A lecture")
    _, key = api_token_create(owner=admin, name="schemathesis")
    result = subprocess.run(
        schemathesis_command(live_server.url, key, max_examples=10),
        env=schemathesis_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    summary = result.stdout[-8000:]
    assert result.returncode == 0, summary
    assert re.search(r"Tested: (\d+)", summary) and int(re.search(r"Tested: (\d+)", summary)[1]) >= 20, summary


def test_every_webhook_event_is_in_the_schema_with_its_payload(schema):
    from unpuzzle.webhooks.events import EVENT_TYPES

    assert schema["openapi"].startswith("3.1")
    assert set(schema["webhooks"]) == set(EVENT_TYPES)
    components = schema["components"]["schemas"]

    def data_of(event_type: str) -> str:
        envelope = schema["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]["schema"]
        name = envelope["$ref"].rsplit("/", 1)[-1]
        assert set(components[name]["properties"]) == {"id", "type", "created_at", "data"}
        return components[name]["properties"]["data"]["$ref"].rsplit("/", 1)[-1]

    assert data_of("video.ready") == "Video" and data_of("video.deleted") == "DeletedVideo"
    assert data_of("upload.completed") == "UploadProgress"
    assert set(components[data_of("budget.kill_switch.engaged")]["properties"]) == {"alert", "budget"}
    description = schema["webhooks"]["video.ready"]["post"]["description"]
    assert all(f"`{header}`" in description for header in ("webhook-id", "webhook-timestamp", "webhook-signature"))
