"""Markdown to safe HTML: the page content, chat bodies, and the server's own messages.

As Owncast 0.0.7 did, markdown is rendered as a whole document (block level: a chat body
comes out as ``<p>...</p>``), raw HTML in it is let through by the renderer, and bare
``http(s)://`` URLs become links. Unlike 0.0.7 (which sanitized chat only), every result
then goes through nh3 (ammonia) with an allow-list, so safe HTML survives and no script,
event handler or ``javascript:`` URL does, whatever the renderer let by.

Three allow-lists: the page (what an owner lays out a page with), chat (0.0.7's:
paragraphs, breaks, bold, emphasis, code, links and our own emoji images), and the
server's messages (system messages, notices, the welcome message), which get the page's.
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
    "caption",
    "cite",
    "code",
    "dd",
    "del",
    "details",
    "div",
    "dl",
    "dt",
    "em",
    "figcaption",
    "figure",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "small",
    "span",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "u",
    "ul",
}
_ATTRIBUTES = {
    "*": {"class", "title"},
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"align"},
    "th": {"align"},
    "ol": {"start"},
}
_URL_SCHEMES = {"http", "https", "mailto"}
_REL = "nofollow noreferrer noopener"

#: Lone surrogates: valid in a str (and in JSON, as ``\ud800``) but not in UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _renderer(preset: str, **extra: bool) -> MarkdownIt:
    """A renderer that lets raw HTML through and links bare ``http(s)://`` URLs only
    (0.0.7's linkify took those two schemes, and only with the scheme written out)."""
    md = MarkdownIt(preset, {"html": True, "linkify": True, **extra}).enable("linkify")
    links = md.linkify
    if links is None:  # linkify-it-py is a dependency (markdown-it-py[linkify])
        raise RuntimeError("linkify-it-py is not installed")
    links.set({"fuzzy_link": False, "fuzzy_email": False, "fuzzy_ip": False})
    for schema in ("ftp:", "mailto:", "//"):
        links.add(schema, None)
    return md


#: The page: GitHub-flavoured markdown as 0.0.7 (tables, strikethrough, links).
_page_md = _renderer("commonmark").enable(["table", "strikethrough"])
#: Chat and the server's messages: plain CommonMark as 0.0.7 (no strikethrough, and a
#: newline inside a paragraph stays a newline).
_chat_md = _renderer("commonmark")


def _scalar(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD, which nh3 (Rust strings) needs:
    it raises ``UnicodeEncodeError`` on them."""
    return _SURROGATE.sub("\ufffd", text)


def render_page(markdown: str) -> str:
    """The owner's page content as sanitized HTML."""
    return sanitize(_page_md.render(_scalar(markdown or "").strip()))


def render_server_message(markdown: str) -> str:
    """A message the server or an integration speaks as the server (system messages,
    notices, the welcome message): markdown, the page's allow-list."""
    return sanitize(_chat_md.render(_scalar(markdown or "").strip()))


def sanitize(html: str, tags: set[str] | None = None) -> str:
    """Keep only allow-listed tags, attributes and URL schemes; links get rel=noopener."""
    attributes = (
        _ATTRIBUTES
        if tags is None
        else {k: v for k, v in _ATTRIBUTES.items() if k == "*" or k in tags}
    )
    return nh3.clean(
        _scalar(html),
        tags=tags if tags is not None else _PAGE_TAGS,
        attributes=attributes,
        url_schemes=_URL_SCHEMES,
        link_rel=_REL,
    ).strip()


_IMG_WITHOUT_SRC = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>")
#: What 0.0.7's chat policy kept: paragraphs, breaks, bold, emphasis, code, links, emoji.
_CHAT_TAGS = {"a", "br", "p", "img", "strong", "em", "code", "pre"}
#: 0.0.7 opened fully qualified links in a new tab (nh3 writes attributes as ``name="..."``).
_ABSOLUTE_LINK = re.compile(r'<a href="(https?://[^"]*)"')


def _chat_attribute(element: str, attribute: str, value: str) -> str | None:
    # Images in chat are our own emoji only: a viewer must not make every other
    # viewer's browser fetch an arbitrary URL.
    if element == "img" and attribute == "src":
        if not value.startswith("/img/emoji/") or ".." in value or "//" in value:
            return None
    return value


def render_chat(text: str) -> str:
    """A chat body as typed, rendered as a markdown document and sanitized for chat."""
    html = _chat_md.render(_scalar(text or "").strip())
    cleaned = nh3.clean(
        html,
        tags=_CHAT_TAGS,
        attributes={"a": {"href"}, "img": {"src", "alt", "title", "class"}},
        url_schemes=_URL_SCHEMES,
        link_rel=_REL,
        attribute_filter=_chat_attribute,
    ).strip()
    # An <img> whose src was refused is useless; drop it whole.
    cleaned = _IMG_WITHOUT_SRC.sub("", cleaned)
    return _ABSOLUTE_LINK.sub(r'<a href="\1" target="_blank"', cleaned)
