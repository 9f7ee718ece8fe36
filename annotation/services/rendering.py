"""Markdown as safe HTML: the platform's one renderer, for instructions, prompts and responses alike.

The dialect is CommonMark (markdown-it-py) with GFM tables and strikethrough, which is what chat
models write; single line breaks are kept (a model's line structure stays visible); raw HTML in
the text is shown as text, never as markup; images become links (nothing is loaded from another
site). Fenced code blocks that name a language are highlighted with Pygments on the server, so
the page needs no highlighting script. Whatever comes out is sanitised again with nh3, so even a
bug in the parser cannot let a script or an event handler through.

Rendering a 300-word answer takes about 2 ms, too much for the next-task hot path, where one
task is shown to every annotator of its overlap: `markdown_html_many` renders each distinct text
once per process and keeps the result in a bounded LRU keyed by the text (docs/ranking.md has the
measured effect on next-task latency). For tasks, the HTML is rendered ahead of time instead
(services/prerender.py) and stored with RENDERER_VERSION, so a lease usually renders nothing.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from functools import lru_cache
from importlib.metadata import version

import markdown_it
import nh3
import pygments
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

RENDER_CACHE_SIZE = 4096  # distinct texts kept per process (a task's responses and prompt turns)
MAX_HIGHLIGHT_CHARS = 20_000  # longer code blocks are shown plain: highlighting them costs too much

# Bump RENDERING_RULES when this module's output changes (dialect, allowed tags, classes). Stored HTML
# of another version (ResponseHtml, PromptHtml) is ignored and rendered again, so an upgrade of the
# rules or of a library that shapes the output (a new Pygments token class) never shows stale markup.
RENDERING_RULES = 1
RENDERER_VERSION = 1 + zlib.crc32(
    f"{RENDERING_RULES} {markdown_it.__version__} {version('nh3')} {pygments.__version__}".encode()
) % 32_000  # a PositiveSmallIntegerField

_FORMATTER = HtmlFormatter(nowrap=True)


def _highlight(code: str, lang: str, _attrs: str) -> str:
    """Pygments spans for a fenced block with a known language; '' lets markdown-it escape it plainly."""
    if not lang or len(code) > MAX_HIGHLIGHT_CHARS:
        return ""
    try:
        lexer = get_lexer_by_name(lang.strip().split()[0].lower(), stripnl=False)
    except ClassNotFound:
        return ""
    return highlight(code, lexer, _FORMATTER)


_MD = (
    MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False, "typographer": False, "highlight": _highlight})
    .enable(["table", "strikethrough"])
    .disable("image")
)

_TAGS = set(nh3.ALLOWED_TAGS) - {"img", "area", "map"}
_CLASSES = {
    "span": {name for name in STANDARD_TYPES.values() if name},  # Pygments token classes only
    "code": {f"language-{name}" for name in ("python", "py", "js", "javascript", "ts", "typescript", "json", "bash", "sh",
                                               "shell", "sql", "html", "css", "c", "cpp", "java", "go", "rust", "ruby",
                                               "yaml", "toml", "text", "diff", "r", "php", "kotlin", "swift")},
}


def _sanitise(markup: str) -> str:
    return nh3.clean(
        markup,
        tags=_TAGS,
        allowed_classes=_CLASSES,
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )


def markdown_to_safe_html(text: str) -> str:
    """Markdown (instructions, a prompt turn, a response) as HTML that is safe to insert into a page."""
    return _cached(text or "")


def markdown_render(text: str) -> str:
    """markdown_to_safe_html without the cache: for texts rendered once (services/prerender.py)."""
    return _sanitise(_MD.render(text or ""))


@lru_cache(maxsize=RENDER_CACHE_SIZE)
def _cached(text: str) -> str:
    return markdown_render(text)


def markdown_html_many(texts: Sequence[str]) -> list[str]:
    """`markdown_to_safe_html` of each text, each distinct text rendered once per process."""
    return [_cached(text or "") for text in texts]


def highlight_stylesheet() -> str:
    """The CSS of the Pygments token classes (frontend/static/frontend/highlight.css is generated from this)."""
    return HtmlFormatter(style="default").get_style_defs(".markdown pre code")
