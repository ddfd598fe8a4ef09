"""The web view's routes: the page, the JSON it polls, and a Server-Sent Events stream of the same JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from dfcommon.inspection import InspectionPolicy
from supernode.web.access import ClientNames, InspectionGuard

EVENT_INTERVAL_S = 1.0
NO_STORE = {"Cache-Control": "no-store"}


def page_html() -> str:
    """The page (HTML, CSS and the script that polls /api/swarm)."""
    return resources.files("supernode.web").joinpath("page.html").read_text(encoding="utf-8")


def build_app(
    view: Callable[[], dict[str, Any]],
    policy: InspectionPolicy,
    names: ClientNames,
    closing: asyncio.Event | None = None,
) -> Starlette:
    """The Starlette app over view (the current swarm as JSON-ready data), guarded by policy; event streams end
    when closing is set."""
    closing = closing or asyncio.Event()
    html = page_html()

    async def page(request: Request) -> Response:
        return HTMLResponse(html, headers=NO_STORE)

    async def swarm(request: Request) -> Response:
        return JSONResponse(view(), headers=NO_STORE)

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            while not closing.is_set() and not await request.is_disconnected():
                yield f"data: {json.dumps(view(), separators=(',', ':'))}\n\n"
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(EVENT_INTERVAL_S):
                        await closing.wait()

        return StreamingResponse(stream(), media_type="text/event-stream", headers=NO_STORE)

    routes = [
        Route("/", page),
        Route("/api/swarm", swarm),
        Route("/api/events", events),
    ]
    return Starlette(routes=routes, middleware=[Middleware(InspectionGuard, policy=policy, names=names)])
