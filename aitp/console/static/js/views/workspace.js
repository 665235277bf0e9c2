// Requirements workspace: put a document into the knowledge base (upload or paste), generate test cases and watch
// the steps live, review them (accept, reject, edit; one by one or in bulk) and export. Uploads in progress, the
// watched task and unsaved edits survive a reload (IndexedDB, per project and key); an edit whose case changed on
// the server since is reported, never applied over it silently.

import { ApiError } from '../api.js';
import { badge, debounce, download, h, mount, table, toast } from '../dom.js';
import { progress } from './common.js';

const PRIORITIES = ['P0', 'P1', 'P2', 'P3'];

export async function render(ctx, root) {
  const t = ctx.t;
  const kb = h('section', { class: 'panel', id: 'kb', 'aria-labelledby': 'kb-title' });
  const gen = h('section', { class: 'panel', id: 'generate', 'aria-labelledby': 'gen-title' });
  const review = h('section', { id: 'review' });
  mount(root, h('h1', { id: 'view-title' }, t('nav.workspace')),
    ctx.me.root ? h('p', { class: 'muted' }, t('ws.root_project', { project: ctx.me.project })) : null,
    h('div', { class: 'grid2' }, kb, gen), review);
  const controller = new AbortController();
  const state = { ctx, review, signal: controller.signal, taskId: null };
  await Promise.all([knowledge(ctx, kb), generator(state, gen)]);
  return () => controller.abort();
}

async function knowledge(ctx, box) {
  const t = ctx.t;
  const docs = h('div', { id: 'kb-docs' });
  const pending = h('div', { id: 'kb-pending' });
  const file = h('input', { type: 'file', id: 'kb-file', accept: '.txt,.md,.pdf,.docx,.xlsx,.html,.htm,.csv,.json' });
  const text = h('textarea', { id: 'kb-text', rows: 5 });
  const source = h('input', { type: 'text', id: 'kb-source', placeholder: 'notes.md' });
  const status = h('p', { class: 'muted', id: 'kb-status', role: 'status' });

  async function loadDocs() {
    const found = await ctx.api.get('/api/kb/documents', { limit: 10 });
    mount(docs, found.items.length ? table([
      { label: t('kb.source'), value: (d) => d.source || d.title || d.id },
      { label: t('kb.chunks'), num: true, value: (d) => ctx.fmt.int(d.chunk_count ?? d.chunks ?? null) },
      { label: t('task.created'), value: (d) => ctx.fmt.time(d.created_at) },
    ], found.items, { label: t('kb.docs') }) : h('p', { class: 'muted' }, t('kb.none')));
  }

  async function send(id, item) {
    status.textContent = t('kb.uploading', { name: item.name });
    try {
      const res = item.blob
        ? await ctx.api.request('POST', '/api/kb/documents', { body: formOf(item) })
        : await ctx.api.post('/api/kb/documents', { text: item.text, source: item.name });
      await ctx.store.remove('upload', id);
      status.textContent = res.kind ? t('kb.queued', { id: res.id }) : t('kb.added', { name: item.name });
      await Promise.all([loadDocs(), loadPending()]);
    } catch (exc) {
      status.textContent = '';
      status.append(h('span', { class: 'error' }, exc.message));
      await loadPending();
    }
  }

  async function loadPending() {
    const items = await ctx.store.all('upload');
    mount(pending, items.map(({ name, value }) => h('div', { class: 'notice', dataset: { upload: name } },
      t('kb.interrupted', { name: value.name }), ' ',
      h('button', { class: 'secondary', onclick: () => send(name, value) }, t('retry')), ' ',
      h('button', { class: 'secondary', onclick: async () => { await ctx.store.remove('upload', name); loadPending(); } }, t('discard')))));
  }

  // Kept in IndexedDB until the server has it, so a reload mid-upload can send it again.
  async function begin(item) {
    const id = crypto.randomUUID();
    await ctx.store.put('upload', id, item);
    await send(id, item);
  }

  mount(box, h('h2', { id: 'kb-title' }, t('kb.title')),
    h('div', { class: 'row' }, h('label', { for: 'kb-file' }, t('kb.file')), file,
      h('button', { id: 'kb-upload', onclick: () => { const f = file.files[0]; if (f) begin({ name: f.name, type: f.type, blob: f }); } }, t('kb.upload'))),
    h('label', { for: 'kb-text' }, t('kb.paste')), text,
    h('div', { class: 'row' }, h('label', { for: 'kb-source' }, t('kb.source')), source,
      h('button', { id: 'kb-add', onclick: () => { if (text.value.trim()) begin({ name: source.value.trim() || 'pasted.md', text: text.value }); } }, t('kb.add'))),
    status, pending, h('h3', {}, t('kb.docs')), docs);
  await Promise.all([loadDocs(), loadPending()]);
}

function formOf(item) {
  const form = new FormData();
  form.append('file', item.blob, item.name);
  form.append('source', item.name);
  return form;
}

async function generator(state, box) {
  const { ctx } = state;
  const t = ctx.t;
  const requirement = h('textarea', { id: 'g-req', rows: 6 });
  const module = h('input', { type: 'text', id: 'g-module' });
  const useKb = h('input', { type: 'checkbox', id: 'g-kb', checked: true });
  const error = h('p', { class: 'error', role: 'alert', id: 'g-error' });
  const watch = h('div', { id: 'g-watch' });
  state.watch = watch;
  mount(box, h('h2', { id: 'gen-title' }, t('gen.title')),
    h('label', { for: 'g-req' }, t('gen.requirement')), requirement,
    h('div', { class: 'row' }, h('label', { for: 'g-module' }, t('gen.module')), module,
      h('label', {}, useKb, ' ', t('gen.use_kb'))),
    h('button', { id: 'g-start', onclick: async () => {
      error.textContent = '';
      try {
        const task = await ctx.api.post('/api/tasks', { kind: 'testcase.generate', input: { requirement: requirement.value, module: module.value, use_knowledge: useKb.checked } });
        await ctx.store.put('watch', 'task', task.id);
        watchTask(state, task.id);
      } catch (exc) { error.textContent = exc instanceof ApiError ? exc.message : String(exc); }
    } }, t('gen.start')), error, watch);
  const watched = await ctx.store.get('watch', 'task');
  if (watched) watchTask(state, watched);
}

async function watchTask(state, id) {
  const { ctx, watch } = state;
  const t = ctx.t;
  state.taskId = id;
  let task;
  try { task = await ctx.api.get(`/api/tasks/${encodeURIComponent(id)}`); } catch (exc) {
    if (exc instanceof ApiError && exc.status === 404) await ctx.store.remove('watch', 'task');
    return;
  }
  const steps = h('ol', { id: 'g-steps', 'aria-live': 'polite' });
  const head = h('div', { id: 'g-head' });
  const draw = () => mount(head, h('p', {}, h('a', { href: `#/tasks?id=${task.id}` }, task.id), ' ', badge(t(`status.${task.status}`), task.status)),
    h('div', { class: 'row' }, progress(task.progress), `${task.progress}%`),
    task.error ? h('p', { class: 'error' }, task.error.message, task.error.hint ? ` — ${task.error.hint}` : '') : null);
  draw();
  mount(watch, h('h3', {}, t('gen.watching')), head, steps,
    h('button', { class: 'secondary', id: 'g-forget', onclick: async () => { await ctx.store.remove('watch', 'task'); mount(watch); mount(state.review); } }, t('gen.forget')));
  const seen = new Set();
  const finish = async () => {
    task = await ctx.api.get(`/api/tasks/${encodeURIComponent(id)}`);
    draw();
    if (task.status === 'succeeded') await reviewCases(state, task);
  };
  const ended = ['succeeded', 'failed', 'cancelled'].includes(task.status);
  if (ended) await finish();
  ctx.api.events(id, (ev) => {
    const data = ev.data.data || {};
    if (ev.type === 'task_progress' && data.step && !seen.has(data.step)) {
      seen.add(data.step);
      steps.append(h('li', { dataset: { step: data.step } }, data.step));
    }
    if (!ended && typeof data.progress === 'number') { task.progress = data.progress; draw(); }
    // A finished task's log replays its final event too; its cases are on screen already.
    if (!ended && ['task_succeeded', 'task_failed', 'task_cancelled'].includes(ev.type)) finish().catch(() => {});
  }, state.signal).catch(() => {});
}

async function reviewCases(state, task) {
  const { ctx, review } = state;
  const t = ctx.t;
  const found = await ctx.api.get('/api/testcases', { task_id: task.id, limit: 500 });
  const cases = found.items;
  const drafts = new Map((await ctx.store.all('draft')).filter((d) => d.value.task_id === task.id).map((d) => [d.name, d.value]));
  const conflicts = [];
  for (const c of cases) {
    const d = drafts.get(c.id);
    if (d && d.base !== c.updated_at) conflicts.push(c);
  }
  const selected = new Set();
  const error = h('p', { class: 'error', role: 'alert', id: 'rv-error' });
  const submit = async (body) => {
    error.textContent = '';
    try {
      await ctx.api.post(`/api/tasks/${encodeURIComponent(task.id)}/testcases/review`, body);
      for (const id of Object.keys(body.edits || {})) await ctx.store.remove('draft', id);
      toast(t('review.sent'));
      await reviewCases(state, task);
    } catch (exc) { error.textContent = exc.message; }
  };
  const saveDraft = debounce((c, changes) => ctx.store.put('draft', c.id, { task_id: task.id, base: c.updated_at, changes }), 300);

  const rows = table([
    { label: h('span', { class: 'sr' }, t('rv.select')), value: (c) => h('input', { type: 'checkbox', 'aria-label': t('rv.select_case', { title: c.title }), dataset: { select: c.id },
      onchange: (ev) => { if (ev.target.checked) selected.add(c.id); else selected.delete(c.id); } }) },
    { label: t('rv.title'), value: (c) => h('div', {}, h('strong', {}, c.title), h('div', { class: 'muted' }, c.steps.map((s) => `${s.step}. ${s.action} → ${s.expected}`).join(' · '))) },
    { label: t('rv.priority'), value: (c) => c.priority },
    { label: t('rv.type'), value: (c) => c.type },
    { label: t('rv.status'), name: 'status', value: (c) => h('span', {}, badge(t(`rv.${c.review_status}`), c.review_status), c.edited ? ` ${t('rv.edited')}` : '', drafts.has(c.id) ? h('span', { class: 'badge pending', dataset: { draft: c.id } }, t('rv.draft')) : '') },
    { label: t('actions'), value: (c) => h('div', { class: 'row' },
      h('button', { class: 'secondary', dataset: { accept: c.id }, onclick: () => submit({ accepted: [c.id] }) }, t('rv.accept')),
      h('button', { class: 'secondary', dataset: { reject: c.id }, onclick: () => submit({ rejected: [c.id] }) }, t('rv.reject')),
      h('button', { class: 'secondary', dataset: { edit: c.id }, onclick: () => openEditor(c) }, t('edit'))) },
  ], cases, { label: t('rv.cases'), rowAttrs: (c) => ({ 'data-case': c.id }) });

  const editor = h('div', { id: 'rv-editor' });
  function openEditor(c, fromDraft = drafts.get(c.id)) {
    const base = fromDraft ? fromDraft.changes : { title: c.title, priority: c.priority, steps: c.steps };
    const title = h('input', { type: 'text', id: 'e-title', value: base.title, maxlength: 200 });
    const priority = h('select', { id: 'e-priority' }, PRIORITIES.map((p) => h('option', { value: p, selected: p === base.priority }, p)));
    const steps = h('textarea', { id: 'e-steps', rows: 6, value: base.steps.map((s) => `${s.action} | ${s.data || ''} | ${s.expected}`).join('\n') });
    const changes = () => ({
      title: title.value.trim(), priority: priority.value,
      steps: steps.value.split('\n').filter((l) => l.trim()).map((l, i) => {
        const [action = '', data = '', expected = ''] = l.split('|').map((p) => p.trim());
        return { step: i + 1, action, data, expected };
      }),
    });
    const keep = () => saveDraft(c, changes());
    for (const el of [title, priority, steps]) el.addEventListener('input', keep);
    mount(editor, h('div', { class: 'panel case-edit', dataset: { editing: c.id } },
      h('h3', {}, t('rv.editing', { title: c.title })),
      h('label', { for: 'e-title' }, t('rv.title')), title,
      h('label', { for: 'e-priority' }, t('rv.priority')), priority,
      h('label', { for: 'e-steps' }, t('rv.steps')), steps,
      h('div', { class: 'row' },
        h('button', { id: 'e-save', onclick: () => submit({ edits: { [c.id]: changes() } }) }, t('rv.save_edit')),
        h('button', { class: 'secondary', onclick: async () => { await ctx.store.remove('draft', c.id); mount(editor); reviewCases(state, task); } }, t('rv.drop_draft')))));
    title.focus();
  }

  const exportButtons = ['json', 'csv', 'xlsx', 'md'].map((fmt) => h('button', { class: 'secondary', dataset: { export: fmt }, onclick: async () => {
    try {
      const res = await ctx.api.request('GET', `/api/tasks/${encodeURIComponent(task.id)}/testcases?format=${fmt}`, { raw: true });
      download(`testcases-${task.id}.${fmt}`, await res.blob());
    } catch (exc) { error.textContent = exc.message; }
  } }, fmt.toUpperCase()));

  mount(review, h('h2', {}, t('rv.title_section', { n: ctx.fmt.int(cases.length) })),
    conflicts.map((c) => h('div', { class: 'notice', role: 'alert', dataset: { conflict: c.id } },
      t('rv.conflict', { title: c.title }), ' ',
      h('button', { class: 'secondary', onclick: () => openEditor(c) }, t('rv.open_draft')), ' ',
      h('button', { class: 'secondary', onclick: async () => { await ctx.store.remove('draft', c.id); reviewCases(state, task); } }, t('discard')))),
    h('div', { class: 'row' },
      h('button', { class: 'secondary', id: 'rv-all', onclick: () => { for (const box of review.querySelectorAll('[data-select]')) { box.checked = true; selected.add(box.dataset.select); } } }, t('rv.select_all')),
      h('button', { id: 'rv-accept', onclick: () => selected.size && submit({ accepted: [...selected] }) }, t('rv.accept_selected')),
      h('button', { class: 'danger', id: 'rv-reject', onclick: () => selected.size && submit({ rejected: [...selected] }) }, t('rv.reject_selected')),
      h('span', { class: 'muted' }, t('rv.export')), exportButtons),
    error, editor, h('div', { class: 'scroll' }, rows));
}
