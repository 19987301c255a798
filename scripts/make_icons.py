"""Draw Confide's app icon as SVG and render the PNG sizes browsers ask for with Chromium.

    python -m scripts.make_icons

Writes ``client_web/icon.svg`` (the favicon), ``icon-192.png`` and ``icon-512.png`` (the
manifest's "any" icons, rounded, transparent corners) and ``icon-maskable-512.png`` (full
bleed, the drawing inside the central 80 % circle that every mask keeps: W3C Web App
Manifest, "icon masks").  The PNGs are committed; run this again only when the drawing changes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from natlab.fixtures import CHROMIUM, CHROMIUM_ARGS

__all__ = ["icon_svg", "main"]

CLIENT_WEB = Path(__file__).resolve().parent.parent / "client_web"
ACCENT = "#0a5bc4"
ACCENT_LIGHT = "#2f80e4"


def icon_svg(maskable: bool = False) -> str:
    """The icon on a 512 grid: a speech bubble holding a keyhole, on the accent colour."""
    # Maskable: a full square (the platform cuts its own shape) and the drawing scaled to
    # stay within the safe circle of radius 0.4 × 512 around the centre.
    background = (
        '<rect width="512" height="512" fill="url(#g)"/>'
        if maskable
        else '<rect width="512" height="512" rx="112" fill="url(#g)"/>'
    )
    scale = 0.78 if maskable else 1.0
    offset = 256 * (1 - scale)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512">'
        '<defs><linearGradient id="g" x1="0" y1="0" x2="0" y2="1">'
        f'<stop offset="0" stop-color="{ACCENT_LIGHT}"/><stop offset="1" stop-color="{ACCENT}"/>'
        "</linearGradient></defs>"
        f"{background}"
        f'<g transform="translate({offset:.1f} {offset:.1f}) scale({scale})">'
        '<path fill="#fff" d="M168 120h176a56 56 0 0 1 56 56v120a56 56 0 0 1-56 56H248l-88 64'
        ' 16-64h-8a56 56 0 0 1-56-56V176a56 56 0 0 1 56-56z"/>'
        f'<circle cx="256" cy="214" r="38" fill="{ACCENT}"/>'
        f'<path fill="{ACCENT}" d="M238 236h36l14 74h-64z"/>'
        "</g></svg>"
    )


async def _render(svg: str, size: int, path: Path) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": size, "height": size})
            await page.set_content(
                "<style>html,body{margin:0;background:transparent}svg{display:block}</style>"
                + svg.replace("<svg ", f'<svg width="{size}" height="{size}" ', 1)
            )
            path.write_bytes(await page.screenshot(type="png", omit_background=True))
        finally:
            await browser.close()


async def main() -> None:
    (CLIENT_WEB / "icon.svg").write_text(icon_svg() + "\n")
    await _render(icon_svg(), 192, CLIENT_WEB / "icon-192.png")
    await _render(icon_svg(), 512, CLIENT_WEB / "icon-512.png")
    await _render(icon_svg(maskable=True), 512, CLIENT_WEB / "icon-maskable-512.png")


if __name__ == "__main__":
    asyncio.run(main())
