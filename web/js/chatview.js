// How one chat body is shown: the server's sanitized HTML, then `:shortcode:` emoji from
// /api/emoji as images and bare web addresses as links. Every link ends up http(s) only,
// opening in a new tab with rel="noopener nofollow ugc"; anything else (a `javascript:`
// address, say) stays plain text. Text is only ever added as text nodes, never as HTML.
"use strict";

(function () {
  const LINK_REL = "noopener nofollow ugc";
  // A web address, or a shortcode such as :smile: (letters, digits, _ + -).
  const TOKENS = /(https?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]}])|:([A-Za-z0-9_+-]{1,64}):/g;
  const SKIP = new Set(["A", "CODE", "PRE", "SCRIPT", "STYLE"]);

  function safeHref(href) {
    try {
      const url = new URL(href, location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function link(href, text) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    fixLink(a);
    return a;
  }

  function fixLink(a) {
    a.target = "_blank";
    a.rel = LINK_REL;
  }

  function emojiImage(name, src) {
    const img = document.createElement("img");
    img.className = "emoji";
    img.src = src;
    img.alt = ":" + name + ":";
    img.title = ":" + name + ":";
    return img;
  }

  // Replaces shortcodes and addresses inside one text node.
  function expandText(node, emoji) {
    const text = node.nodeValue;
    TOKENS.lastIndex = 0;
    let match;
    let last = 0;
    const parts = [];
    while ((match = TOKENS.exec(text)) !== null) {
      let replacement = null;
      if (match[1]) {
        const href = safeHref(match[1]);
        if (href) replacement = link(href, match[1]);
      } else if (emoji.has(match[2])) {
        replacement = emojiImage(match[2], emoji.get(match[2]));
      }
      if (!replacement) continue;
      parts.push(document.createTextNode(text.slice(last, match.index)), replacement);
      last = match.index + match[0].length;
    }
    if (!parts.length) return;
    parts.push(document.createTextNode(text.slice(last)));
    node.replaceWith(...parts);
  }

  function walk(element, emoji) {
    for (const child of Array.from(element.childNodes)) {
      if (child.nodeType === Node.TEXT_NODE) expandText(child, emoji);
      else if (child.nodeType === Node.ELEMENT_NODE && !SKIP.has(child.tagName)) {
        walk(child, emoji);
      }
    }
  }

  // Fills `target` with the message body `html` (already sanitized by the server).
  function render(target, html, emoji) {
    const template = document.createElement("template");
    template.innerHTML = html || "";
    const fragment = template.content;
    fragment.querySelectorAll("a").forEach((a) => {
      const href = a.hasAttribute("href") ? safeHref(a.getAttribute("href")) : null;
      if (href) {
        a.href = href;
        fixLink(a);
      } else {
        a.replaceWith(document.createTextNode(a.textContent));
      }
    });
    walk(fragment, emoji || new Map());
    target.replaceChildren(fragment);
  }

  window.owncastChatView = { render, safeHref, LINK_REL };
})();
