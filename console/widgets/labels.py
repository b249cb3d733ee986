"""Updating a `Label` without laying the screen out again when its width stays the same.

`Label.update` asks for a layout of the whole screen by default (its size may follow its text);
the console's labels are one line each, so only a change of width can move anything.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Label


def _width(content: object) -> int | None:
    if isinstance(content, str):
        return Content.from_markup(content).cell_length
    return content.cell_length if isinstance(content, Content) else None


def relabel(label: Label, content: str | Content, shown: dict[Label, object]) -> None:
    """Show `content` in `label` if it is not what `shown` says the label has; a layout only
    when its width changes (or cannot be told)."""
    known, before = label in shown, shown.get(label)
    if known and before == content:
        return
    shown[label] = content
    old, new = _width(before) if known else None, _width(content)
    label.update(content, layout=old is None or new is None or old != new)
