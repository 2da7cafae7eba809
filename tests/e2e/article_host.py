"""A newsroom's article page on another origin, with one script tag for the ask.

A plain static page under a strict content security policy of its own, as a
newsroom's CMS would serve it: the embed must work within it.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.harness import ROOT, free_port

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"

ARTICLE = """<!doctype html>
<html lang="{lang}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="/article.css"></head>
<body>
<main>
<article>
<h1>{title}</h1>
<p>{body}</p>
<div data-donations-ask data-article="{article}"{extra}>
  <a href="{app}/support">{fallback}</a>
</div>
</article>
</main>
<script src="{app}/embed.js" async></script>
</body>
</html>
"""

WORDS = {
    "en": ("City council votes on the new budget", "The council met on Tuesday.", "Support us"),
    "ru": ("Городской совет голосует за бюджет", "Совет собрался во вторник.", "Поддержите нас"),
}

CSS = b"body { margin: 0 auto; max-width: 44rem; padding: 1rem; font-family: Georgia, serif; }\n"


class ArticleHost:
    """Serves /article?lang=..&article=..[&campaign=..] on its own port (its own origin)."""

    def __init__(self, app_url: str) -> None:
        self.app_url = app_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        host = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/axe.min.js":
                    self._send(AXE.read_bytes(), "text/javascript")
                elif parts.path == "/article.css":
                    self._send(CSS, "text/css")
                elif parts.path == "/article":
                    self._send(host.article(parse_qs(parts.query)).encode(), "text/html")
                else:
                    self.send_error(404)

            def _send(self, body: bytes, mimetype: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", f"{mimetype}; charset=utf-8")
                self.send_header("Content-Security-Policy", host.policy())
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def policy(self) -> str:
        """What a careful newsroom allows: its own origin and the donations app, nothing inline."""
        app = self.app_url
        return (
            f"default-src 'none'; script-src 'self' {app}; style-src 'self' {app}; "
            f"connect-src {app}; img-src 'self'; form-action 'self' {app}; base-uri 'none'"
        )

    def article(self, query: dict[str, list[str]]) -> str:
        lang = query.get("lang", ["en"])[0]
        title, body, fallback = WORDS[lang]
        extra = "".join(
            f' data-{key}="{query[key][0]}"' for key in ("campaign", "variant") if key in query
        )
        return ARTICLE.format(
            lang=lang,
            title=title,
            body=body,
            fallback=fallback,
            app=self.app_url,
            article=query.get("article", ["budget-vote"])[0],
            extra=extra,
        )

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
