// Pieces several views share: the project parameter, task rows, today's window, status labels.

import { badge, h } from '../dom.js';

export const STATUS_BY_EVENT = {
  task_started: 'running', task_progress: 'running', task_need_review: 'reviewing',
  task_succeeded: 'succeeded', task_failed: 'failed', task_cancelled: 'cancelled',
};

export function scope(ctx, extra = {}) { return { project: ctx.project || undefined, ...extra }; }

export function utcToday() { return new Date().toISOString().slice(0, 10); }

export function statusBadge(ctx, status) { return badge(ctx.t(`status.${status}`), status); }

export function progress(value) {
  const bar = h('div', { class: 'progress', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': value, 'aria-label': `${value}%` },
    h('span', { style: `width:${value}%` }));
  return bar;
}

export function taskColumns(ctx) {
  const t = ctx.t, fmt = ctx.fmt;
  return [
    { label: t('task.id'), value: (r) => h('a', { href: `#/tasks?id=${r.id}` }, r.id.slice(0, 12)) },
    { label: t('task.kind'), value: (r) => r.kind },
    ctx.me.root ? { label: t('project'), value: (r) => r.project } : null,
    { label: t('task.status'), name: 'status', value: (r) => statusBadge(ctx, r.status) },
    { label: t('task.progress'), name: 'progress', value: (r) => progress(r.progress) },
    { label: t('task.step'), name: 'step', value: (r) => r.current_step || '—' },
    { label: t('task.created'), value: (r) => fmt.time(r.created_at) },
  ].filter(Boolean);
}

// Applies a WebSocket notice to a task row in place; false when the row is not on screen.
export function applyNotice(ctx, root, notice) {
  const row = root.querySelector(`tr[data-task="${CSS.escape(notice.task_id)}"]`);
  if (!row) return false;
  const status = STATUS_BY_EVENT[notice.type];
  if (status) row.querySelector('[data-col="status"]').replaceChildren(statusBadge(ctx, status));
  const data = notice.data || {};
  if (typeof data.progress === 'number') row.querySelector('[data-col="progress"]').replaceChildren(progress(data.progress));
  if (data.step) row.querySelector('[data-col="step"]').textContent = data.step;
  if (notice.type === 'task_succeeded') row.querySelector('[data-col="progress"]').replaceChildren(progress(100));
  return true;
}
