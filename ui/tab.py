"""What every tab is given (the session's states, the gallery radio, the examples) and what it gives back: its
part in the events that cross tabs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from search.photos.web import WebPhotoRules
from ui.site import Site
from ui.view import GalleryView


@dataclass
class Shared:
    """What the composition root hands every tab it builds."""

    site: Site
    source: gr.State  # which gallery the session is looking at
    mine: gr.State  # the token of the session's private gallery
    pick: gr.Radio  # the Gallery radio
    examples: list[Path]  # example photos of the landmark gallery's test split
    default: str  # the encoder shown first
    tabs: gr.Tabs | None = None  # the page's tabs (an event may open another tab)
    link_message: gr.Markdown | None = None  # where a link that cannot be opened says why
    web: WebPhotoRules = WebPhotoRules()  # what fetching a photo from a visitor's web address may do
    published: dict[str, dict[str, Any]] = field(default_factory=dict)  # components earlier tabs offer, by tab name

    @property
    def states(self) -> list[gr.State]:
        """The states `Site.route` expects after a routed handler's inputs."""
        return [self.source, self.mine]


@dataclass
class Tab:
    """A built tab's part in the shared events: what it reads and updates when the Gallery radio switches."""

    switch_inputs: list[gr.components.Component] = field(default_factory=list)
    switch_outputs: list[gr.components.Component] = field(default_factory=list)
    on_switch: Callable[[GalleryView, dict[Any, Any]], dict[Any, Any]] | None = None  # (view, input values) -> updates
    name: str = ""  # under which later tabs find its components in `Shared.published`
    components: dict[str, Any] = field(default_factory=dict)  # what other tabs may wire to
