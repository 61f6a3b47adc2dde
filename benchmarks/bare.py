"""The yardstick of the ingest benchmark: a bare aiohttp server that reads each request's
body and answers 204, with nothing else (no routes to match, no middlewares, no log).

``python -m benchmarks.bare PORT`` serves on 127.0.0.1:PORT on the default asyncio event loop
until SIGTERM or SIGINT. What the exporter does beyond this is what it costs per request.
"""

from __future__ import annotations

import sys

from aiohttp import web


async def read_and_answer(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=204)


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", read_and_answer)
    return app


def main(argv: list[str]) -> int:
    port = int(argv[0])
    web.run_app(create_app(), host="127.0.0.1", port=port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
