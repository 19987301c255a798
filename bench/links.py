"""Opening a room link in the browser client, for the benches that drive Chromium.

A link never joins by itself (issue 9 item 11): ``/?room=R&name=N`` shows one button,
"Join R as N" (client_web/main.js), and boot.js opens the signaling socket early but
joins only on the click. Two ways to press it:

``JOIN_INIT``
    an init script (``BrowserContext.add_init_script``) that clicks the button in the
    page as soon as main.js has named it: on a measured path, where a Playwright round
    trip would add this process's latency to the page's figure. The click is marked
    ``bench:join-click`` (performance marks, from the navigation's start).
``enter``
    Playwright's own click, for set-up that is not timed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["JOIN_INIT", "enter"]

#: The automated click of a measured visit (see the module docstring). The label must be
#: exactly the one main.js writes, so a page that names the room or the person differently
#: is never joined by mistake: its run then times out instead of measuring something else.
JOIN_INIT = """addEventListener('DOMContentLoaded', () => {
  const button = document.getElementById('enter');
  const q = new URLSearchParams(location.search);
  if (!button || !q.get('room') || !q.get('name')) return;
  const label = `Join ${q.get('room')} as ${q.get('name')}`;
  const press = () => {
    if (button.textContent !== label) return false;
    performance.mark('bench:join-click');
    button.click();
    return true;
  };
  if (press()) return;
  const watch = new MutationObserver(() => press() && watch.disconnect());
  watch.observe(button, { childList: true, characterData: true, subtree: true });
});"""


async def enter(page: Any, url: str, room: str, name: str) -> None:
    """Open the room link and press its Join button (Playwright's click; not for timing)."""
    await page.goto(f"{url}/?room={room}&name={name}")
    await page.get_by_role("button", name=f"Join {room} as {name}", exact=True).click()
