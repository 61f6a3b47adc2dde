"""``/metrics``: what prometheus-client's handler serves, written in a few milliseconds.

prometheus-client's ``make_aiohttp_handler`` renders on the event loop, about 6 µs a series:
~100 ms at the series cap (about 16,500 series with the defaults), during which no webhook
is answered. Rendering in a thread does not help: the thread holds the GIL in slices that
every socket call of the loop then waits for. So the exporter's own families
(:mod:`exporter.families`) write their lines themselves, from lines made once per series,
and prometheus-client's encoder writes the rest (process, platform and GC metrics, and the
few gauges), each part in the order of registration. The result is what prometheus-client
would serve, byte for byte: text or OpenMetrics by ``Accept`` (its ``choose_encoder``),
``name[]`` to select families (left to prometheus-client itself), gzip by
``Accept-Encoding``. It is rendered and compressed a family at a time, handing the loop
back between families, so at the cap no webhook waits more than a few milliseconds.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final, Protocol, runtime_checkable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from prometheus_client.registry import Collector

Encoder = Callable[[Collector], bytes]

#: OpenMetrics ends the exposition with this line, once.
_EOF: Final = "# EOF\n"
#: gzip's fastest level: the exposition is so repetitive that it already shrinks 25-fold
#: (1.7 MB to 70 kB at the series cap, in 2 ms).
GZIP_LEVEL: Final = 1
_GZIP_WBITS: Final = 16 + zlib.MAX_WBITS


@runtime_checkable
class Renders(Protocol):
    """A collector that writes its own sample lines (:mod:`exporter.families`)."""

    def describe(self) -> Iterator[Metric]: ...

    def render(self, out: list[str]) -> None: ...


class _Collectors:
    """Several collectors as one, for an encoder."""

    def __init__(self, collectors: Iterable[Collector]) -> None:
        self._collectors = tuple(collectors)

    def collect(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


class Exposition:
    """Renders the collectors of a registry, given in the order they were registered."""

    def __init__(self, collectors: Sequence[Collector]) -> None:
        # Runs of collectors that render themselves, and of those the encoder renders.
        self._parts: list[Renders | _Collectors] = []
        run: list[Collector] = []
        for collector in collectors:
            if isinstance(collector, Renders):
                if run:
                    self._parts.append(_Collectors(run))
                    run = []
                self._parts.append(collector)
            else:
                run.append(collector)
        if run:
            self._parts.append(_Collectors(run))
        #: Each family's ``# HELP`` and ``# TYPE`` lines, per content type.
        self._headers: dict[tuple[str, int], str] = {}

    def render(self, encoder: Encoder, content_type: str) -> bytes:
        """The whole exposition at once."""
        return b"".join(self.parts(encoder, content_type))

    def parts(self, encoder: Encoder, content_type: str) -> Iterator[bytes]:
        """The exposition a family (or a run of prometheus-client's collectors) at a time."""
        openmetrics = content_type.startswith(OPENMETRICS.partition(";")[0])
        for part in self._parts:
            if isinstance(part, Renders):
                out = [self._header(part, encoder, content_type, openmetrics=openmetrics)]
                part.render(out)
                yield "".join(out).encode()
            else:
                yield _text(encoder(part), openmetrics=openmetrics).encode()
        if openmetrics:
            yield _EOF.encode()

    def _header(
        self, part: Renders, encoder: Encoder, content_type: str, *, openmetrics: bool
    ) -> str:
        key = (content_type, id(part))
        header = self._headers.get(key)
        if header is None:
            # What the encoder writes for the family without samples: its header, exactly.
            empty = _Described(part)
            header = self._headers[key] = _text(encoder(empty), openmetrics=openmetrics)
        return header


class _Described:
    """A collector whose families are another's, without samples."""

    def __init__(self, collector: Renders) -> None:
        self._collector = collector

    def collect(self) -> Iterator[Metric]:
        return self._collector.describe()


def _text(encoded: bytes, *, openmetrics: bool) -> str:
    text = encoded.decode()
    return text.removesuffix(_EOF) if openmetrics else text


def metrics_handler(registry: CollectorRegistry, exposition: Exposition) -> Handler:
    """The ``/metrics`` handler: ``exposition`` of ``registry``'s collectors."""

    async def handle(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(",".join(request.headers.getall(hdrs.ACCEPT, [])))
        headers = {hdrs.CONTENT_TYPE: content_type}
        names = request.query.getall("name[]", [])
        parts = (
            iter([encoder(registry.restricted_registry(names))])
            if names
            else exposition.parts(encoder, content_type)
        )
        gzip = gzip_accepted(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS) if gzip else None
        chunks = []
        for part in parts:
            chunks.append(compressor.compress(part) if compressor else part)
            # A family at a time (2 ms for the largest at the cap), then the webhooks' turn.
            await asyncio.sleep(0)
        if compressor is not None:
            chunks.append(compressor.flush())
            headers[hdrs.CONTENT_ENCODING] = "gzip"
        return web.Response(body=b"".join(chunks), headers=headers)

    return handle
