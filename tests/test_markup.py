"""Markdown rendering and sanitizing for page content, chat bodies and server messages:
rendered as Owncast 0.0.7 did (whole documents, raw HTML let through, bare URLs linked),
then sanitized by our allow-lists."""

from __future__ import annotations

from html.parser import HTMLParser

from twisted.trial import unittest

from owncast.core.markup import render_chat, render_page, render_server_message, sanitize


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

    def test_raw_html_is_rendered_then_sanitized(self):
        """Raw HTML in the page is HTML (0.0.7 rendered it so): safe tags survive, script
        and handlers do not."""
        html = render_page('<p>random</p>\n\n<div class="box"><b>bold</b> <u>under</u></div>')
        self.assertIn("<p>random</p>", html)
        self.assertNotIn("&lt;", html)
        self.assertEqual([t for t, _ in tags(html)], ["p", "div", "b", "u"], html)
        html = render_page('<script>alert(1)</script>\n\n<img src=x onerror="alert(1)">')
        self.assertEqual(unsafe(html), [])
        self.assertNotIn("alert(1)</script", html)
        for body in (
            '<a href="javascript:alert(1)">x</a>',
            '<iframe src="https://evil.example"></iframe>',
            "<style>body{display:none}</style>",
            '<div onclick="alert(1)" style="position:fixed">x</div>',
            "<svg><script>alert(1)</script></svg>",
        ):
            self.assertEqual(unsafe(render_page(body)), [], body)
            self.assertNotIn("style=", render_page(body), body)

    def test_bare_urls_become_links(self):
        """As 0.0.7's linkify: http(s) URLs written out become links, nothing else does."""
        html = render_page("see https://example.com/a?b=1 and example.org and ftp://x.example")
        self.assertEqual(
            [a["href"] for t, a in tags(html) if t == "a"], ["https://example.com/a?b=1"]
        )

    def test_markdown_images_allowed_in_page(self):
        html = render_page("![alt](https://example.com/a.png)")
        self.assertIn('<img src="https://example.com/a.png" alt="alt">', html)


class ChatTests(unittest.TestCase):
    def test_a_body_is_a_markdown_document(self):
        """0.0.7 rendered each body as a document: a paragraph around inline markdown."""
        self.assertEqual(
            render_chat("**b** _i_ `c`"), "<p><strong>b</strong> <em>i</em> <code>c</code></p>"
        )
        self.assertEqual(render_chat("  one\n\ntwo  "), "<p>one</p>\n<p>two</p>")
        self.assertEqual(render_chat("one\ntwo"), "<p>one\ntwo</p>", "no hard breaks")
        self.assertEqual(render_chat("```\ncode\n```"), "<pre><code>code\n</code></pre>")

    def test_block_markdown_beyond_the_allow_list_keeps_its_text(self):
        """Headings, lists and quotes are not chat's: their text stays, the tags go."""
        self.assertEqual(render_chat("# a heading"), "a heading")
        html = render_chat("- one\n- two\n\n> quoted")
        self.assertEqual([t for t, _ in tags(html)], ["p"], html)
        for word in ("one", "two", "quoted"):
            self.assertIn(word, html)

    def test_raw_html_in_chat_is_sanitized_not_escaped(self):
        """Raw HTML passes the renderer, as in 0.0.7, and chat's allow-list decides."""
        self.assertEqual(
            render_chat("<strong>hi</strong> <em>you</em>"),
            "<p><strong>hi</strong> <em>you</em></p>",
        )
        self.assertEqual(render_chat("<h1>big</h1>"), "big")
        self.assertEqual(
            render_chat('Here is an iframe <iframe src="https://x.example"></iframe>'),
            "<p>Here is an iframe </p>",
        )

    def test_bare_urls_in_chat_become_links_that_open_a_new_tab(self):
        html = render_chat("go to https://example.com now")
        [(_, _), (tag, attrs)] = tags(html)
        self.assertEqual(tag, "a")
        self.assertEqual(attrs["href"], "https://example.com")
        self.assertEqual(attrs["target"], "_blank")
        self.assertEqual(set(attrs["rel"].split()), {"nofollow", "noreferrer", "noopener"})
        self.assertEqual(tags(render_chat("example.com and www.example.com")), [("p", {})])

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
            self.assertEqual(tags(render_chat(f"![x]({src})")), [("p", {})], src)

    def test_links_are_kept_safe(self):
        html = render_chat("see [site](https://example.com) and [here](/api/status)")
        links = [a for t, a in tags(html) if t == "a"]
        self.assertEqual([a["href"] for a in links], ["https://example.com", "/api/status"])
        self.assertEqual([a.get("target") for a in links], ["_blank", None])
        self.assertTrue(all("noopener" in a["rel"] for a in links))


class ServerMessageTests(unittest.TestCase):
    def test_server_messages_keep_block_markdown_and_lose_script(self):
        """System messages and notices get the page's allow-list: headings and lists
        stay (0.0.7 did not sanitize them at all), script does not."""
        html = render_server_message("## Rules\n\n- be kind\n\n<script>x()</script>")
        self.assertEqual([t for t, _ in tags(html)], ["h2", "ul", "li"], html)
        self.assertEqual(
            render_server_message("Stream title changed to **Late show**"),
            "<p>Stream title changed to <strong>Late show</strong></p>",
        )


class SurrogateTests(unittest.TestCase):
    def test_lone_surrogates_become_replacement_characters(self):
        """A lone surrogate (JSON can carry one, UTF-8 cannot) renders as U+FFFD rather
        than raising from nh3."""
        self.assertEqual(render_chat("a\ud800 **b**"), "<p>a\ufffd <strong>b</strong></p>")
        self.assertEqual(render_page("x\udfff"), "<p>x\ufffd</p>")
        self.assertEqual(sanitize("<b>\ud800</b>"), "<b>\ufffd</b>")
