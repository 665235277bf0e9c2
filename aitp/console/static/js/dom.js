// Small DOM helpers: elements are built with h() and text is always set as text, never parsed as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') el.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name === 'style') setStyle(el, value);
    else if (name === 'value' && 'value' in el) el.value = value;
    else if (name === 'checked' || name === 'selected' || name === 'disabled') el[name] = Boolean(value);
    else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

// Through the CSSOM: the page's Content-Security-Policy refuses style attributes, not style properties.
function setStyle(el, text) {
  for (const part of String(text).split(';')) {
    const cut = part.indexOf(':');
    if (cut > 0) el.style.setProperty(part.slice(0, cut).trim(), part.slice(cut + 1).trim());
  }
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function mount(target, ...children) {
  target.replaceChildren();
  append(target, children);
  return target;
}

// A table from column specs {label, value(row) -> node|text, num, raw(row) -> data-value}.
export function table(columns, rows, attrs = {}) {
  const head = h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)));
  const body = document.createElement('tbody');
  const frag = document.createDocumentFragment();
  for (const row of rows) {
    const tr = document.createElement('tr');
    if (attrs.rowClass) { const cls = attrs.rowClass(row); if (cls) tr.className = cls; }
    if (attrs.rowAttrs) for (const [k, v] of Object.entries(attrs.rowAttrs(row))) tr.setAttribute(k, v);
    for (const c of columns) {
      const td = document.createElement('td');
      if (c.num) td.className = 'num';
      if (c.raw) { const raw = c.raw(row); if (raw !== null && raw !== undefined) td.dataset.value = String(raw); }
      if (c.name) td.dataset.col = c.name;
      const v = c.value(row);
      if (v instanceof Node) td.append(v); else if (v !== null && v !== undefined) td.textContent = String(v);
      tr.append(td);
    }
    frag.append(tr);
  }
  body.append(frag);
  return h('table', { class: attrs.class || null, 'aria-label': attrs.label || null },
    h('thead', {}, head), body);
}

export function card(label, value, { sub = null, raw = null, name = null } = {}) {
  return h('div', { class: 'card', dataset: name ? { card: name } : undefined },
    h('div', { class: 'label' }, label),
    h('div', { class: 'value', dataset: raw === null || raw === undefined ? undefined : { value: String(raw) } }, value),
    sub ? h('div', { class: 'sub' }, sub) : null);
}

export function toast(message) {
  const box = document.getElementById('toast');
  const item = h('div', {}, message);
  box.append(item);
  setTimeout(() => item.remove(), 5000);
}

export function badge(text, cls = text) {
  return h('span', { class: `badge ${cls || ''}` }, text);
}

export function download(name, data, type) {
  const blob = data instanceof Blob ? data : new Blob([data], { type });
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, class: 'sr' }, name);
  document.body.append(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(url); a.remove(); }, 1000);
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}
