// One WebSocket per signed-in page (/api/ws): task notices pushed by the server, reconnecting with back-off.

export class Live {
  constructor(key, project) {
    this.key = key;
    this.project = project;
    this.listeners = new Set();
    this.delay = 1000;
    this.closed = false;
    this.state = 'connecting';
    this.connect();
  }

  connect() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const q = new URLSearchParams({ token: this.key });
    if (this.project) q.set('project', this.project);
    this.ws = new WebSocket(`${scheme}://${location.host}/api/ws?${q}`);
    this.ws.onopen = () => { this.delay = 1000; this.setState('live'); };
    this.ws.onmessage = (msg) => {
      let notice;
      try { notice = JSON.parse(msg.data); } catch { return; }
      if (notice.type === 'subscribed') return;
      for (const fn of this.listeners) fn(notice);
    };
    this.ws.onclose = (ev) => {
      this.setState('offline');
      if (this.closed || ev.code === 4401 || ev.code === 1008) return; // a refused key does not come back
      setTimeout(() => { if (!this.closed) this.connect(); }, this.delay);
      this.delay = Math.min(this.delay * 2, 30000);
    };
  }

  setState(state) {
    this.state = state;
    document.dispatchEvent(new CustomEvent('aitp-live', { detail: state }));
  }

  on(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  close() { this.closed = true; this.listeners.clear(); this.ws.close(); }
}
