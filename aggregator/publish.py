"""Regenerate the outputs from what is stored: each configured output's entries, rendered.

An outer shell over the store's read side and the render stage (neither imports the other).
"""

from __future__ import annotations

from .config import Config, OutputSpec
from .render import RenderReport, render_output
from .store import Reader
from .types import Channel


def channel_for(config: Config, spec: OutputSpec) -> Channel:
    return Channel(name=spec.name, title=spec.title, base_url=config.output.base_url)


def render_outputs(config: Config, store: Reader) -> tuple[RenderReport, ...]:
    """Regenerate every configured output from the database alone."""
    reports = []
    for spec in config.outputs:
        source_ids = [s.id for s in config.sources if spec.selects(s)]
        entries = store.recent_entries(source_ids, limit=spec.limit)
        reports.append(
            render_output(channel_for(config, spec), entries, spec.formats, config.output.dir)
        )
    return tuple(reports)
