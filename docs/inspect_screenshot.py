"""Screenshot of `inspect view` on an exported run, in headless Chromium (docs/inspect_view.png).

    inspect view --log-dir RUN/inspect --port 7575 &
    .venv/bin/python docs/inspect_screenshot.py "http://localhost:7575/#/logs/<file>.eval" docs/inspect_view.png

The viewer loads the log after the page (fetches in real time), so the shot is taken over the
DevTools protocol once the page has had `--wait` seconds, not by `chromium --screenshot`.
"""

import argparse
import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import urllib.request

import aiohttp


async def shoot(url: str, out: str, wait: float, port: int = 9333) -> None:
    profile = tempfile.mkdtemp()
    browser = subprocess.Popen([shutil.which("chromium") or "chromium-browser", "--headless", "--no-sandbox",
                                "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
                                f"--remote-debugging-port={port}", "--window-size=1400,900", url],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.sleep(wait)
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
        target = next(p for p in pages if p["type"] == "page")
        async with aiohttp.ClientSession() as client, client.ws_connect(target["webSocketDebuggerUrl"]) as ws:
            await ws.send_json({"id": 1, "method": "Page.captureScreenshot", "params": {"format": "png"}})
            reply = await ws.receive_json()
        with open(out, "wb") as f:
            f.write(base64.b64decode(reply["result"]["data"]))
    finally:
        browser.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--wait", type=float, default=15.0, help="seconds the page gets to load (default: 15)")
    a = parser.parse_args()
    asyncio.run(shoot(a.url, a.out, a.wait))
    print(f"written to {a.out}")
