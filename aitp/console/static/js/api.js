// The REST client: every call carries the signed-in key; errors keep the API's message and field (param).

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || null;
    this.param = err.param || null;
  }
}

export class Api {
  constructor(key) { this.key = key; }

  headers(extra = {}) { return { authorization: `Bearer ${this.key}`, ...extra }; }

  async request(method, path, { json, body, headers, raw } = {}) {
    const init = { method, headers: this.headers(headers) };
    if (json !== undefined) { init.body = JSON.stringify(json); init.headers['content-type'] = 'application/json'; }
    else if (body !== undefined) init.body = body;
    const res = await fetch(path, init);
    if (!res.ok) {
      let payload = null;
      try { payload = await res.json(); } catch { payload = null; }
      throw new ApiError(res.status, payload);
    }
    if (raw) return res;
    return res.status === 204 ? null : res.json();
  }

  get(path, params) { return this.request('GET', withQuery(path, params)); }
  post(path, json) { return this.request('POST', path, { json }); }
  put(path, json) { return this.request('PUT', path, { json }); }
  del(path) { return this.request('DELETE', path); }

  // Server-sent events over fetch (EventSource cannot send the Authorization header).
  async events(taskId, onEvent, signal, after = 0) {
    const headers = after ? { 'last-event-id': String(after) } : {};
    const res = await fetch(`/api/tasks/${encodeURIComponent(taskId)}/events`, { headers: this.headers(headers), signal });
    if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = { id: null, type: 'message', data: '' };
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) event.id = Number(line.slice(4));
          else if (line.startsWith('event: ')) event.type = line.slice(7);
          else if (line.startsWith('data: ')) event.data += line.slice(6);
        }
        if (event.data) onEvent({ ...event, data: JSON.parse(event.data) });
      }
    }
  }
}

export function withQuery(path, params) {
  if (!params) return path;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
