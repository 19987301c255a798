"""The design's promises (issue 12 item 4), measured in real Chromium: WCAG AA contrast of
every visible text in both colour schemes, 44 px touch targets on a phone, motion off under
``prefers-reduced-motion``, empty states that say what to do, messages grouped by sender,
files by paste and by drop, and inline previews only for received raster images."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from playwright.async_api import Page, ViewportSize, expect

from natlab.fixtures import BrowserLauncher
from natlab.lab import Host
from server.static import client_web_dir
from tests.browser import chromium, expect_connected, expect_message, join, lab_server, log, send

TEST_TIMEOUT = 120.0
PHONE = ViewportSize(width=375, height=812)
#: WCAG 2.1 §1.4.3 (AA): 4.5:1 for text, 3:1 for large text (24 px, or 18.66 px bold).
AA_TEXT = 4.5
AA_LARGE = 3.0

#: Every visible element with text of its own, with its contrast against the background
#: it is drawn on (the nearest ancestor with an opaque background).
CONTRASTS = """() => {
  const rgb = (c) => {
    const m = c.match(/rgba?\\(([^)]*)\\)/);
    if (!m) return null;
    const [r, g, b, a = 1] = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return { r, g, b, a };
  };
  const lin = (v) => (v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  const lum = (c) => 0.2126 * lin(c.r) + 0.7152 * lin(c.g) + 0.0722 * lin(c.b);
  const under = (e) => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c && c.a >= 0.99) return c;
    }
    return rgb(getComputedStyle(document.body).backgroundColor);
  };
  const out = [];
  for (const e of document.body.querySelectorAll('*')) {
    const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !e.getClientRects().length || e.closest('[hidden], :disabled, svg')) continue;
    const s = getComputedStyle(e);
    if (s.visibility !== 'visible' || s.display === 'none') continue;
    const [hi, lo] = [lum(rgb(s.color)), lum(under(e))].sort((x, y) => y - x);
    const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
    out.push({
      text: e.textContent.trim().slice(0, 40), tag: e.tagName,
      ratio: (hi + 0.05) / (lo + 0.05), large: size >= 24 || (bold && size >= 18.66),
    });
  }
  return out;
}"""

#: Visible controls a finger must hit, with their size.
TARGETS = """() => [...document.querySelectorAll(
    'button, a[href], select, textarea, summary, label.btn, label.check,'
    + 'input:not([type=checkbox]):not([type=file])')]
  .filter((e) => e.getClientRects().length && getComputedStyle(e).visibility === 'visible')
  .map((e) => {
    const r = e.getBoundingClientRect();
    const name = e.getAttribute('aria-label') || e.textContent.trim().slice(0, 30) || e.tagName;
    return { name, w: r.width, h: r.height };
  })"""


async def low_contrast(page: Page) -> list[dict[str, Any]]:
    """The visible texts below WCAG AA on ``page`` (none, when the scheme holds)."""
    texts: list[dict[str, Any]] = await page.evaluate(CONTRASTS)
    assert len(texts) > 5
    return [t for t in texts if t["ratio"] < (AA_LARGE if t["large"] else AA_TEXT)]


async def drop_or_paste(page: Page, how: str, name: str) -> None:
    """A file pasted into the message box, or dropped on the chat, as a person does."""
    await page.evaluate(
        """([how, name]) => {
            const data = new DataTransfer();
            data.items.add(new File(['hello from ' + how], name, { type: 'text/plain' }));
            const init = { bubbles: true, cancelable: true };
            if (how === 'paste') document.getElementById('text').dispatchEvent(
                new ClipboardEvent('paste', { clipboardData: data, ...init }));
            else document.getElementById('drop').dispatchEvent(
                new DragEvent('drop', { dataTransfer: data, ...init }));
        }""",
        [how, name],
    )


async def test_contrast_targets_motion_empty_states_grouping_files_and_previews(
    lab_host: Host, launch_browser: BrowserLauncher, tmp_path: Path
) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), lab_server(lab_host) as server:
        browser = await chromium(launch_browser, lab_host, server.url)
        ada = await join(browser, server.url, "looks", "Ada")
        # Alone: the empty state says how to bring people in.
        empty = ada.locator("main .empty")
        alone, quiet = empty.locator(".alone"), empty.locator(".quiet")
        await expect(alone).to_contain_text("Nobody else is here yet")
        await expect(alone).to_contain_text("Copy link")
        await expect(quiet).to_be_hidden()
        bob = await join(browser, server.url, "looks", "Bob")
        await expect_connected(ada, "Bob")
        await expect(quiet).to_contain_text("Say hello")
        await expect(alone).to_be_hidden()

        # Grouped: Bob's second message joins his first; Ada's reply starts a new group.
        await send(bob, "first")
        await send(bob, "second")
        await send(ada, "reply")
        await send(bob, "third")
        await expect_message(ada, "third")
        await expect(empty).to_be_hidden()
        runs = (
            await log(ada)
            .locator(".m")
            .evaluate_all(
                "ms => ms.map((m) => [m.querySelector('p').textContent, m.matches('.cont')])"
            )
        )
        assert runs == [["first", False], ["second", True], ["reply", False], ["third", False]]
        await expect(log(ada).locator(".m.cont .who")).to_be_hidden()
        await expect(log(ada).locator(".m").first.locator("time")).to_be_visible()

        # Files by paste and by drop are offered like picked ones.
        await drop_or_paste(ada, "paste", "pasted.txt")
        await drop_or_paste(ada, "drop", "dropped.txt")
        await expect(log(bob).get_by_text("Ada offers pasted.txt")).to_be_visible()
        await expect(log(bob).get_by_text("Ada offers dropped.txt")).to_be_visible()

        # A received PNG is shown inline from a blob: URL; SVG and HTML never are.
        picture = tmp_path / "picture.png"
        picture.write_bytes((client_web_dir() / "icon-192.png").read_bytes())
        vector = tmp_path / "vector.svg"
        vector.write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
        page = tmp_path / "page.html"
        page.write_text("<h1>not shown</h1>")
        await ada.get_by_label("Send file").set_input_files([picture, vector, page])
        accept = log(bob).get_by_role("button", name="Accept")
        await expect(accept).to_have_count(5)
        for _ in range(5):
            await accept.first.click()
        await expect(log(bob).locator(".file[data-state=received]")).to_have_count(5)
        preview = log(bob).get_by_role("img", name="Preview of picture.png")
        await expect(preview).to_be_visible()
        assert await preview.evaluate("i => i.src.startsWith('blob:') && i.naturalWidth === 192")
        await expect(log(bob).locator("img")).to_have_count(1)
        await expect(log(bob).get_by_role("heading", name="not shown")).to_have_count(0)

        # Both colour schemes: every visible text meets AA, on the chat and on the join form.
        for scheme in ("light", "dark"):
            for page_ in (ada, bob):
                await page_.emulate_media(color_scheme=scheme)
                assert await low_contrast(page_) == [], scheme
        fresh = await (await browser.new_context(color_scheme="dark")).new_page()
        await fresh.goto(server.url + "/")
        assert await low_contrast(fresh) == []
        await fresh.emulate_media(color_scheme="light")
        assert await low_contrast(fresh) == []

        # A phone: with the peers panel open, every control is at least 44 × 44 px.
        await bob.set_viewport_size(PHONE)
        await bob.get_by_role("button", name="People").click()
        await bob.get_by_role("list", name="Peers").get_by_text("Details").click()
        targets = await bob.evaluate(TARGETS)
        assert len(targets) > 10
        small = [t for t in targets if t["w"] < 44 or t["h"] < 44]
        assert small == []

        # Motion: messages slide in, unless the person asked for less motion.
        first = log(bob).locator(".m").first
        assert await first.evaluate("m => getComputedStyle(m).animationName") == "pop"
        await bob.emulate_media(reduced_motion="reduce")
        assert await first.evaluate("m => getComputedStyle(m).animationName") == "none"
