"""The fence around prometheus_client's internals: every use of what its API does not promise is here.

- `TextFamily` subclasses `Metric` and turns `samples` into a lazy property (Metric.__init__ assigns it);
- it writes the text and OpenMetrics formats itself, as prometheus_client's encoders do: HELP escaping,
  labels sorted by name, a counter's `_total` suffix, values through `utils.floatToGoString`;
- `exposition` reads the negotiated escaping from the encoder `choose_encoder` returns (a functools.partial
  with an `escaping` keyword), and feeds the other families to that encoder through a stand-in registry.

tests/test_exposition.py renders families here and through `generate_latest` (both formats) and compares the
bytes; an upgrade of prometheus_client that changes any of the above fails there first.
"""

from __future__ import annotations

from functools import partial
from itertools import chain
from operator import itemgetter
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import ALLOWUTF8, UNDERSCORES
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString


class _Families:
    """A few already collected families, in the shape prometheus_client's encoders take."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


def exposition(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """The negotiated format; families that can render themselves (`exposition`) do, in collection
    order, and the rest go through prometheus_client's encoder, so the bytes are the same either way."""
    encoder, ctype = choose_encoder(accept)
    escaping = encoder.keywords.get("escaping", UNDERSCORES) if isinstance(encoder, partial) else UNDERSCORES
    if escaping not in (UNDERSCORES, ALLOWUTF8):  # our names are legacy names: only these leave them as they are
        return encoder(registry), ctype
    openmetrics = ctype.startswith("application/openmetrics-text")
    eof = b"# EOF\n"
    parts: list[bytes] = []
    generic: list[Any] = []

    def flush() -> None:
        if generic:
            text = encoder(_Families(generic))
            parts.append(text[: -len(eof)] if openmetrics and text.endswith(eof) else text)
            generic.clear()

    for family in registry.collect():
        render = getattr(family, "exposition", None)
        if render is None:
            generic.append(family)
        else:
            flush()
            parts.append(render(openmetrics).encode())
    flush()
    if openmetrics:
        parts.append(eof)
    return b"".join(parts), ctype


class TextFamily(Metric):
    """A label-heavy family that renders its own exposition text (`exposition`), in the exact format of
    prometheus_client's encoders, with each series' label string cached between scrapes: a Sample per
    series through the generic encoder is what a large scrape would otherwise spend its time on
    (docs/performance.md, "Scrape"). `samples` are built only when a generic consumer asks."""

    def __init__(
        self,
        name: str,
        documentation: str,
        typ: str,
        labels: list[str],
        rows: list[tuple[tuple[str, ...], float]],
        cache: dict[Any, str],
    ) -> None:
        self._built: list[Sample] | None = None
        super().__init__(name, documentation, typ)
        self.labels = labels
        self.rows = rows
        self.cache = cache

    @property  # type: ignore[override]
    def samples(self) -> list[Sample]:
        if self._built is None:
            name = self.name + "_total" if self.type == "counter" else self.name
            labels = self.labels
            self._built = [Sample(name, dict(zip(labels, k, strict=True)), v, None, None) for k, v in self.rows]
        return self._built

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._built = value or None

    def exposition(self, openmetrics: bool) -> str:
        """HELP, TYPE and sample lines, as prometheus_client renders them (labels sorted by name)."""
        name = sample = self.name
        if self.type == "counter":
            sample = name + "_total"
            if not openmetrics:
                name = sample
        doc = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        if openmetrics:
            doc = doc.replace('"', r"\"")
        cache = self.cache
        get = cache.get
        missing = [key for key, _ in self.rows if get(key) is None]
        if missing:
            self._heads(sample, missing)
        # floatToGoString of a small int is repr(float(v)); larger ones switch to exponents
        lines = [
            f"{cache[k]}{v}.0\n"
            if type(v) is int and -1_000_000 < v < 1_000_000
            else f"{cache[k]}{floatToGoString(v)}\n"
            for k, v in self.rows
        ]
        return f"# HELP {name} {doc}\n# TYPE {name} {self.type}\n" + "".join(lines)

    def _heads(self, sample: str, keys: list[tuple[str, ...]]) -> None:
        """Cache `sample{label="value",...} ` for each key: one %-template per family with the labels in
        name order, values escaped only in a family where one needs it."""
        labels = self.labels
        order = sorted(range(len(labels)), key=labels.__getitem__)
        # names are legacy names (exposition() sends any other escaping to prometheus_client): no `%` in them
        pairs = ",".join(f'{labels[i]}="%s"' for i in order)
        template = f"{sample}{{{pairs}}} " if labels else f"{sample} "
        # with two labels or more, itemgetter gives the values in name order as a tuple; with one or none
        # the key already is that tuple
        ordered = list(map(itemgetter(*order), keys)) if len(order) > 1 else keys
        text = "".join(chain.from_iterable(ordered))
        if "\\" in text or "\n" in text or '"' in text:
            ordered = [tuple(map(_escape, vals)) for vals in ordered]
        self.cache.update(zip(keys, map(template.__mod__, ordered), strict=True))


def _escape(v: str) -> str:
    if "\\" in v or "\n" in v or '"' in v:
        return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return v
