"""Fixture pages the browser tests open, served on 127.0.0.1 by a threaded http.server."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HEAD = '<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>{title}</title></head><body>'
_SCRIPT = """<script>
for (const b of document.querySelectorAll('button')) b.addEventListener('click', () => {
  document.getElementById('status').textContent = b.dataset.result || b.textContent.trim();
});
</script>"""


def _order_form(testid: str, label: str, result: str) -> str:
    return (
        _HEAD.format(title="下单")
        + '<h1>订单</h1><form onsubmit="return false"><label for="qty">数量</label>'
        + '<input id="qty" name="qty" placeholder="输入数量" data-testid="qty-input">'
        + '<div class="actions"><span>确认后不可更改</span><button type="button" class="btn primary" '
        + f'data-testid="{testid}" data-result="{result}">{label}</button>'
        + '<button type="button" class="btn" data-testid="back" data-result="已返回">返回</button></div></form>'
        + '<p id="status" data-testid="status"></p>'
        + _SCRIPT
        + "</body></html>"
    )


PAGES: dict[str, str] = {
    "/buttons": _HEAD.format(title="Buttons")
    + '<button data-testid="save">Save</button><button class="plain-cancel">Cancel</button>'
    + '<label>Email <input type="email" name="email"></label><input placeholder="Search here">'
    + '<select name="size" data-testid="size"><option value="s">Small</option><option value="l">Large</option></select>'
    + '<a href="/zh">中文页面</a><p id="status" data-testid="status"></p>'
    + _SCRIPT
    + "</body></html>",
    "/late": _HEAD.format(title="Late")
    + '<div id="slot"></div><script>setTimeout(() => { document.getElementById("slot").innerHTML ='
    + " '<button data-testid=\"late-btn\">Arrived</button>'; }, 1500);</script></body></html>",
    "/zh": _HEAD.format(title="中文")
    + '<h1 data-testid="title">测试平台</h1><p data-testid="intro">浏览器测试，支持中文截图与自愈定位。</p>'
    + '<button data-testid="go">开始测试</button></body></html>',
    "/v1/order": _order_form("submit-order", "提交订单", "订单已提交"),
    "/v2/order": _order_form("place-order", "提交订单", "订单已提交"),
    "/v3/order": _order_form("submit-order", "取消订单", "订单已取消"),
    "/metadata": _HEAD.format(title="Metadata")
    + '<img src="http://169.254.169.254/latest/meta-data/iam" alt="x"><p data-testid="ok">page loaded</p>'
    + '<script>fetch("http://169.254.169.254/latest/meta-data/").catch(() => {});</script></body></html>',
    "/download": _HEAD.format(title="Download")
    + '<a href="/files/report.txt" download="report.txt" data-testid="dl">下载报告</a></body></html>',
    "/upload": _HEAD.format(title="Upload")
    + '<input type="file" data-testid="file" onchange="document.getElementById(\'status\').textContent = '
    + 'this.files[0].name"><p id="status" data-testid="status"></p></body></html>',
}
REDIRECTS = {
    "/go/metadata": "http://169.254.169.254/latest/meta-data/",
    "/go/elsewhere": "http://not-allowed.example/",
    "/go/file": "file:///etc/passwd",
    "/go/zh": "/zh",
}


class _Handler(BaseHTTPRequestHandler):
    stop = threading.Event()
    hits: list[str] = []

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        self.hits.append(path)
        if path == "/hang":
            while not self.stop.wait(0.2):  # never answers while the test runs
                pass
            return
        if path in REDIRECTS:
            self.send_response(302)
            self.send_header("Location", REDIRECTS[path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/files/report.txt":
            body, ctype = "报告内容\n".encode(), "text/plain; charset=utf-8"
        elif path in PAGES:
            body, ctype = PAGES[path].encode(), "text/html; charset=utf-8"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Site:
    def __init__(self) -> None:
        handler: type[_Handler] = type("Handler", (_Handler,), {"stop": threading.Event(), "hits": []})
        self.handler = handler
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Site:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.handler.stop.set()
        self.server.shutdown()
        self.server.server_close()
        time.sleep(0)
