"""Markdown rendering and sanitizing for page content and chat bodies."""

from __future__ import annotations

from html.parser import HTMLParser

from twisted.trial import unittest

from owncast.core.markup import render_chat, render_page, sanitize


class _Tags(HTMLParser):
    """The real elements and attributes of a fragment (escaped text is not a tag)."""

    def __init__(self, html):
        super().__init__()
        self.found = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def tags(html):
    return _Tags(html).found


def unsafe(html):
    """Names of dangerous things among the real tags of ``html``."""
    problems = []
    for tag, attrs in tags(html):
        if tag in ("script", "svg", "iframe", "object", "style"):
            problems.append(tag)
        problems += [name for name in attrs if name.startswith("on")]
        problems += [
            name
            for name, value in attrs.items()
            if (value or "").strip().lower().startswith(("javascript:", "data:"))
        ]
    return problems


class PageTests(unittest.TestCase):
    def test_markdown_renders(self):
        html = render_page("# T\n\n* a\n* b\n\n| x | y |\n|---|---|\n| 1 | 2 |\n\n~~gone~~")
        self.assertIn("<h1>T</h1>", html)
        self.assertIn("<li>a</li>", html)
        self.assertIn("<table>", html)
        self.assertIn("<s>gone</s>", html)

    def test_links_get_rel_and_unsafe_schemes_are_dropped(self):
        html = render_page(
            "[ok](https://example.com) [bad](javascript:alert(1)) [data](data:text/html,x)"
        )
        self.assertIn('href="https://example.com"', html)
        self.assertIn("noopener", html)
        self.assertEqual(unsafe(html), [])
        self.assertEqual([a["href"] for t, a in tags(html) if t == "a"], ["https://example.com"])

    def test_raw_html_is_escaped(self):
        html = render_page('<script>alert(1)</script>\n\n<img src=x onerror="alert(1)">')
        self.assertEqual(tags(html), [("p", {}), ("p", {})])

    def test_markdown_images_allowed_in_page(self):
        html = render_page("![alt](https://example.com/a.png)")
        self.assertIn('<img src="https://example.com/a.png" alt="alt">', html)


class ChatTests(unittest.TestCase):
    def test_inline_markdown(self):
        self.assertEqual(
            render_chat("**b** _i_ `c`"), "<strong>b</strong> <em>i</em> <code>c</code>"
        )

    def test_block_markdown_stays_inline(self):
        self.assertNotIn("<h1>", render_chat("# not a heading"))

    def test_script_and_handlers_are_neutralised(self):
        for body in (
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            '<a href="javascript:alert(1)">x</a>',
            "[x](javascript:alert(1))",
            "**<svg onload=alert(1)>**",
            "[![x](/img/emoji/a.png)](javascript:x)",
        ):
            self.assertEqual(unsafe(render_chat(body)), [], body)

    def test_only_our_emoji_images(self):
        self.assertIn(
            '<img src="/img/emoji/smile.svg" alt="smile">',
            render_chat("![smile](/img/emoji/smile.svg)"),
        )
        for src in (
            "https://evil.example/track.png",
            "/img/emoji/../../owncast.db",
            "//evil.example/img/emoji/x.png",
            "/api/admin/status",
        ):
            self.assertEqual(tags(render_chat(f"![x]({src})")), [], src)

    def test_links_are_kept_safe(self):
        html = render_chat("see [site](https://example.com)")
        self.assertIn('<a href="https://example.com" rel="noopener noreferrer nofollow">', html)


class SurrogateTests(unittest.TestCase):
    def test_lone_surrogates_become_replacement_characters(self):
        """A lone surrogate (JSON can carry one, UTF-8 cannot) renders as U+FFFD rather
        than raising from nh3."""
        self.assertEqual(render_chat("a\ud800 **b**"), "a\ufffd <strong>b</strong>")
        self.assertEqual(render_page("x\udfff"), "<p>x\ufffd</p>")
        self.assertEqual(sanitize("<b>\ud800</b>"), "<b>\ufffd</b>")
