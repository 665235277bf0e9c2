// Tasks: filters by status and kind, the review queue (approve, correct or reject automation reviews), and a
// task's progress, error with its hint, and event log streamed live.

import { ApiError } from '../api.js';
import { debounce, h, mount, table, toast } from '../dom.js';
import { browserRun } from './browser_run.js';
import { applyNotice, progress, scope, statusBadge, taskColumns } from './common.js';

const STATUSES = ['pending', 'running', 'reviewing', 'succeeded', 'failed', 'cancelled'];
const FINISHED = ['succeeded', 'failed', 'cancelled'];
const PAGE = 50;

export async function render(ctx, root, params) {
  const t = ctx.t;
  const status = params.get('status') || '';
  const kind = params.get('kind') || '';
  const offset = Number(params.get('offset') || 0);
  const id = params.get('id');
  const [stats, found, queue] = await Promise.all([
    ctx.api.get('/api/tasks/stats', scope(ctx)),
    ctx.api.get('/api/tasks', scope(ctx, { status, kind, limit: PAGE, offset })),
    ctx.api.get('/api/tasks', scope(ctx, { status: 'reviewing', limit: 20 })),
  ]);
  const current = { status, kind, offset, id };
  const change = (name) => (ev) => ctx.go('tasks', { ...current, [name]: ev.target.value, offset: 0, id: undefined });
  const filters = h('div', { class: 'filters', role: 'group', 'aria-label': t('tasks.filters') },
    h('label', {}, t('task.status'), h('select', { id: 't-status', onchange: change('status') },
      h('option', { value: '' }, t('tasks.any')), STATUSES.map((s) => h('option', { value: s, selected: s === status }, t(`status.${s}`))))),
    h('label', {}, t('task.kind'), h('select', { id: 't-kind', onchange: change('kind') },
      h('option', { value: '' }, t('tasks.any')), Object.keys(stats.by_kind || {}).sort().map((k) => h('option', { value: k, selected: k === kind }, k)))));
  const list = h('div', { id: 'task-list' }, found.items.length
    ? table(taskColumns(ctx), found.items, { label: t('nav.tasks'), rowAttrs: (r) => ({ 'data-task': r.id }) })
    : h('p', { class: 'muted' }, t('tasks.none')));
  const pager = h('div', { class: 'row' },
    h('span', { class: 'muted', id: 'task-total', dataset: { value: found.total } }, t('tasks.total', { n: ctx.fmt.int(found.total) })),
    offset > 0 ? h('button', { class: 'secondary', onclick: () => ctx.go('tasks', { ...current, offset: Math.max(0, offset - PAGE), id: undefined }) }, t('prev')) : null,
    offset + PAGE < found.total ? h('button', { class: 'secondary', onclick: () => ctx.go('tasks', { ...current, offset: offset + PAGE, id: undefined }) }, t('next')) : null);
  const queueBox = h('div', { id: 'review-queue' }, queue.items.length
    ? table(taskColumns(ctx), queue.items, { label: t('tasks.queue'), rowAttrs: (r) => ({ 'data-task': r.id }) })
    : h('p', { class: 'muted' }, t('tasks.queue_empty')));
  const detail = h('div', { id: 'task-detail' });
  mount(root, h('h1', { id: 'view-title' }, t('nav.tasks')),
    h('h2', {}, t('tasks.queue')), queueBox, detail, h('h2', {}, t('tasks.all')), filters, list, pager);

  const controller = new AbortController();
  if (id) await showTask(ctx, detail, id, controller.signal);
  const refresh = debounce(() => ctx.go('tasks', current), 2000);
  const off = ctx.live.on((notice) => {
    const shown = applyNotice(ctx, list, notice);
    if (!shown && !id) refresh();
  });
  return () => { off(); controller.abort(); };
}

async function showTask(ctx, box, id, signal) {
  const t = ctx.t, fmt = ctx.fmt;
  let task;
  try { task = await ctx.api.get(`/api/tasks/${encodeURIComponent(id)}`); } catch (exc) {
    mount(box, h('p', { class: 'error', role: 'alert' }, exc.message)); return;
  }
  const log = h('div', { class: 'log', id: 'event-log', role: 'log', 'aria-label': t('tasks.events'), tabindex: 0 });
  const head = h('div', { id: 'task-head' });
  const draw = () => mount(head,
    h('p', {}, statusBadge(ctx, task.status), ' ', task.kind, ' · ', t('task.created'), ' ', fmt.time(task.created_at),
      task.finished_at ? ` · ${t('task.finished')} ${fmt.time(task.finished_at)}` : ''),
    h('div', { class: 'row' }, progress(task.progress), `${task.progress}%`, task.current_step ? ` · ${task.current_step}` : ''),
    task.error ? h('div', { class: 'notice', id: 'task-error', role: 'alert' },
      h('strong', {}, task.error.type || t('task.error')), ': ', task.error.message || '',
      task.error.hint ? h('div', {}, h('strong', {}, t('task.hint')), ' ', task.error.hint) : null) : null,
    ctx.canWrite && !FINISHED.includes(task.status) ? h('button', { class: 'danger', id: 'task-cancel', onclick: async () => {
      try { task = await ctx.api.post(`/api/tasks/${encodeURIComponent(id)}/cancel`, {}); draw(); } catch (exc) { toast(exc.message); }
    } }, t('cancel')) : null,
    task.status === 'reviewing' && ctx.canWrite ? reviewForm(ctx, task) : null);
  draw();
  mount(box, h('section', { class: 'panel', 'aria-label': t('tasks.detail') },
    h('h2', {}, t('tasks.detail'), ' ', h('code', {}, task.id)), head,
    task.result ? h('details', {}, h('summary', {}, t('task.result')), h('pre', { class: 'log' }, JSON.stringify(task.result, null, 2).slice(0, 20000))) : null,
    h('div', { id: 'task-browser' }), h('h3', {}, t('tasks.events')), log));
  // A finished run is drawn now; a running one when its final event arrives (a finished task's replay is skipped).
  const browser = task.kind === 'browser.run' ? box.querySelector('#task-browser') : null;
  const drawnAtOpen = FINISHED.includes(task.status);
  if (browser && drawnAtOpen) showBrowserRun(ctx, browser, id, signal);
  // The event log streams until the task's final event; each event also refreshes the header.
  ctx.api.events(id, (ev) => {
    const line = `${fmt.time(ev.data.created_at || ev.data.at)}  ${ev.type}  ${JSON.stringify(ev.data.data ?? {})}`;
    log.append(h('div', {}, line));
    log.scrollTop = log.scrollHeight;
    const data = ev.data.data || {};
    if (typeof data.progress === 'number') task.progress = data.progress;
    if (data.step) task.current_step = data.step;
    if (['task_succeeded', 'task_failed', 'task_cancelled', 'task_need_review'].includes(ev.type)) {
      ctx.api.get(`/api/tasks/${encodeURIComponent(id)}`).then((fresh) => { task = fresh; draw(); }).catch(() => {});
      if (browser && !drawnAtOpen && ev.type !== 'task_need_review') showBrowserRun(ctx, browser, id, signal);
    } else draw();
  }, signal).catch((exc) => { if (exc.name !== 'AbortError') log.append(h('div', { class: 'error' }, exc.message)); });
}

// A browser run's steps, drawn once: when a finished task is opened, or when a running one finishes.
function showBrowserRun(ctx, slot, id, signal) {
  browserRun(ctx, id, signal).then((section) => { if (!signal.aborted) mount(slot, section); })
    .catch((exc) => { if (!signal.aborted) mount(slot, h('p', { class: 'error', role: 'alert' }, exc.message)); });
}

function reviewForm(ctx, task) {
  const t = ctx.t;
  const feedback = h('textarea', { id: 'r-feedback', rows: 3 });
  const body = h('textarea', { id: 'r-body', rows: 8 });
  const interrupt = task.interrupt_data || {};
  const proposed = interrupt.body ?? interrupt.proposed ?? interrupt.draft ?? null;
  if (proposed !== null) body.value = typeof proposed === 'string' ? proposed : JSON.stringify(proposed, null, 2);
  const error = h('p', { class: 'error', role: 'alert', id: 'r-error' });
  const send = (action) => async () => {
    error.textContent = '';
    const spec = { action };
    if (feedback.value.trim()) spec.feedback = feedback.value.trim();
    if (action === 'corrected') {
      try { spec.corrected_body = JSON.parse(body.value); } catch { spec.corrected_body = body.value; }
    }
    try {
      await ctx.api.post(`/api/tasks/${encodeURIComponent(task.id)}/review`, spec);
      toast(t('review.sent'));
      ctx.go('tasks', { id: task.id });
    } catch (exc) { error.textContent = exc instanceof ApiError ? exc.message : String(exc); }
  };
  return h('div', { class: 'panel', id: 'review-form' },
    h('h3', {}, t('review.title')),
    h('details', { open: true }, h('summary', {}, t('review.interrupt')), h('pre', { class: 'log' }, JSON.stringify(interrupt, null, 2).slice(0, 20000))),
    h('label', { for: 'r-body' }, t('review.corrected')), body,
    h('label', { for: 'r-feedback' }, t('review.feedback')), feedback,
    h('div', { class: 'row' },
      h('button', { id: 'r-approve', onclick: send('approved') }, t('review.approve')),
      h('button', { class: 'secondary', id: 'r-correct', onclick: send('corrected') }, t('review.correct')),
      h('button', { class: 'danger', id: 'r-reject', onclick: send('rejected') }, t('review.reject'))),
    error);
}
