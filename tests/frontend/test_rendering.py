"""The one Markdown renderer (annotation.services.rendering): what it keeps, what it removes, and its cache."""
from __future__ import annotations

import re

from annotation.services import rendering
from annotation.services.rendering import markdown_html_many, markdown_to_safe_html


def test_a_model_answer_keeps_its_lists_code_and_tables():
    html = markdown_to_safe_html(
        "Steps:\n1. install\n2. run\n\n```python\nprint('hi')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~ **new**"
    )
    assert "<ol>\n<li>install</li>" in html  # a list may follow a line directly (CommonMark), as models write them
    assert '<pre><code class="language-python"><span class="nb">print</span>' in html  # highlighted on the server
    assert "<table>" in html and "<td>1</td>" in html
    assert "<s>old</s>" in html and "<strong>new</strong>" in html


def test_single_line_breaks_are_kept():
    assert markdown_to_safe_html("roses are red\nviolets are blue") == "<p>roses are red<br>\nviolets are blue</p>\n"


def test_html_in_the_text_is_shown_as_text_and_nothing_executable_survives():
    html = markdown_to_safe_html(
        '<script>alert(1)</script> <img src=x onerror="alert(2)"> [x](javascript:alert(3)) '
        '<a href="#" onclick="alert(4)">y</a>\n\n```html\n<script>alert(5)</script>\n```'
    )
    assert "<script" not in html and "<img" not in html and "<a href=\"#\"" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript' not in html
    assert not re.search(r"<[^>]*\son\w+=", html)  # no event handler inside any tag


def test_images_become_links_and_links_open_apart():
    html = markdown_to_safe_html("![a chart](https://example.com/c.png) and [docs](https://example.com/docs)")
    assert "<img" not in html
    assert '<a href="https://example.com/c.png" target="_blank" rel="noopener noreferrer nofollow">a chart</a>' in html
    assert '<a href="https://example.com/docs" target="_blank" rel="noopener noreferrer nofollow">docs</a>' in html


def test_an_unknown_language_or_no_language_is_shown_plain():
    unknown = markdown_to_safe_html("```nosuchlang\na < b\n```")
    assert unknown.endswith(">a &lt; b\n</code></pre>\n") and "<span" not in unknown and "nosuchlang" not in unknown
    assert markdown_to_safe_html("```\na < b\n```") == "<pre><code>a &lt; b\n</code></pre>\n"


def test_each_distinct_text_is_rendered_once_per_process():
    rendering._cached.cache_clear()
    texts = ["**one** text, rendered once", "another *text*"]
    first = markdown_html_many(texts)
    second = markdown_html_many(texts + texts)
    assert second == first + first
    info = rendering._cached.cache_info()
    assert (info.misses, info.hits) == (2, 4)
