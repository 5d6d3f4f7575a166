"""Markdown to safe HTML, for the page content and chat bodies.

markdown-it-py renders (raw HTML in the source is escaped, not passed through) and nh3
(ammonia) sanitizes the result against an allow-list, so no script, event handler or
``javascript:`` URL survives whatever the renderer lets by.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt

_PAGE_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"align"},
    "th": {"align"},
}
_URL_SCHEMES = {"http", "https", "mailto"}

_page_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_page_md.enable("strikethrough")

#: Lone surrogates: valid in a str (and in JSON, as ``\ud800``) but not in UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _scalar(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD, which nh3 (Rust strings) needs:
    it raises ``UnicodeEncodeError`` on them."""
    return _SURROGATE.sub("\ufffd", text)


def render_page(markdown: str) -> str:
    """The owner's page content as sanitized HTML."""
    html = _page_md.render(markdown or "")
    return sanitize(html, _PAGE_TAGS)


def sanitize(html: str, tags: set[str] | None = None) -> str:
    """Keep only allow-listed tags, attributes and URL schemes; links get rel=noopener."""
    return nh3.clean(
        _scalar(html),
        tags=tags if tags is not None else _PAGE_TAGS,
        attributes={k: v for k, v in _ATTRIBUTES.items() if tags is None or k in tags},
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    ).strip()


_IMG_WITHOUT_SRC = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>")
_CHAT_TAGS = {"a", "b", "strong", "em", "i", "code", "s", "del", "img", "br"}
_chat_md = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable("strikethrough")


def _chat_attribute(element: str, attribute: str, value: str) -> str | None:
    # Images in chat are our own emoji only: a viewer must not make every other
    # viewer's browser fetch an arbitrary URL.
    if element == "img" and attribute == "src":
        if not value.startswith("/img/emoji/") or ".." in value or "//" in value:
            return None
    return value


def render_chat(text: str) -> str:
    """A chat body as typed, rendered from inline markdown and sanitized."""
    html = _chat_md.renderInline(_scalar(text or ""))
    cleaned = nh3.clean(
        html,
        tags=_CHAT_TAGS,
        attributes={"a": {"href", "title"}, "img": {"src", "alt", "title", "class"}},
        url_schemes={"http", "https"},
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_chat_attribute,
    ).strip()
    # An <img> whose src was refused is useless; drop it whole.
    return _IMG_WITHOUT_SRC.sub("", cleaned)
