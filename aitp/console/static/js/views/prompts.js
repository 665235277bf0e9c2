// Prompts: every version of a prompt side by side with its figures (calls, cost per call, error and schema-failure
// rates, acceptance of generated cases, p95) and labels; the server admin key moves labels, sets the canary
// weight and rolls back.

import { ApiError } from '../api.js';
import { h, mount, toast } from '../dom.js';
import { scope } from './common.js';

const METRICS = [
  ['requests', 'int'], ['cost_per_request_usd', 'usd'], ['error_rate', 'pct'], ['schema_failure_rate', 'pct'],
  ['acceptance_rate', 'pct'], ['reviewed_cases', 'int'], ['p50_latency_ms', 'ms'], ['p95_latency_ms', 'ms'],
];

export async function render(ctx, root, params) {
  const t = ctx.t, fmt = ctx.fmt;
  const list = (await ctx.api.get('/api/prompts')).items;
  if (!list.length) { mount(root, h('h1', { id: 'view-title' }, t('nav.prompts')), h('p', { class: 'muted' }, t('prompts.none'))); return null; }
  const name = params.get('name') || list[0].name;
  const [shown, stats] = await Promise.all([
    ctx.api.get(`/api/prompts/${encodeURIComponent(name)}`),
    ctx.api.get(`/api/prompts/${encodeURIComponent(name)}/stats`, scope(ctx)),
  ]);
  const picker = h('label', {}, t('prompts.pick'), h('select', { id: 'p-name', onchange: (ev) => ctx.go('prompts', { name: ev.target.value }) },
    list.map((p) => h('option', { value: p.name, selected: p.name === name }, p.name))));
  const versions = stats.versions;
  const labelText = (v) => shown.labels.filter((l) => l.version === v.version)
    .map((l) => (l.weight !== null && l.weight !== undefined && l.label !== 'production' ? `${l.label} ${fmt.pct(l.weight, 0)}` : l.label)).join(', ') || '—';
  const grid = h('table', { class: 'side-by-side', 'aria-label': t('prompts.versions') },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('prompts.metric')), versions.map((v) => h('th', { scope: 'col', class: 'num' }, `v${v.version}`)))),
    h('tbody', {},
      h('tr', {}, h('th', { scope: 'row' }, t('prompts.labels')), versions.map((v) => h('td', { class: 'num', dataset: { version: v.version, metric: 'labels' } }, labelText(v)))),
      METRICS.map(([key, kind]) => h('tr', {}, h('th', { scope: 'row' }, t(`prompts.m.${key}`)),
        versions.map((v) => h('td', { class: 'num', dataset: { version: v.version, metric: key, value: v[key] ?? '' } }, fmt[kind](v[key])))))));
  mount(root, h('h1', { id: 'view-title' }, t('nav.prompts')),
    h('div', { class: 'filters' }, picker), h('p', { class: 'muted' }, shown.description || ''),
    h('p', { class: 'muted' }, t('spend.window', { from: fmt.time(stats.from), to: fmt.time(stats.to) })),
    h('div', { class: 'scroll' }, grid),
    ctx.me.root ? labelsPanel(ctx, name, shown) : h('p', { class: 'muted' }, t('prompts.admin_only')));
  return null;
}

function labelsPanel(ctx, name, shown) {
  const t = ctx.t;
  const path = `/api/prompts/${encodeURIComponent(name)}`;
  const version = h('select', { id: 'p-version' }, shown.versions.map((v) => h('option', { value: v.version, selected: v.version === shown.latest_version }, `v${v.version}`)));
  const canary = shown.labels.find((l) => l.label === 'canary');
  const weight = h('input', { type: 'number', id: 'p-weight', min: 0, max: 1, step: 0.05, value: canary && canary.weight !== null ? canary.weight : 0.1 });
  const error = h('p', { class: 'error', role: 'alert', id: 'p-error' });
  const act = (fn) => async () => {
    error.textContent = '';
    try { await fn(); toast(t('saved')); ctx.go('prompts', { name }); } catch (exc) { error.textContent = exc instanceof ApiError ? exc.message : String(exc); }
  };
  return h('section', { class: 'panel', id: 'labels-panel', 'aria-labelledby': 'labels-title' },
    h('h2', { id: 'labels-title' }, t('prompts.labels')),
    h('div', { class: 'filters' },
      h('label', { for: 'p-version' }, t('prompts.version'), version),
      h('label', { for: 'p-weight' }, t('prompts.weight'), weight),
      h('button', { id: 'p-canary', onclick: act(() => ctx.api.put(`${path}/labels/canary`, { version: Number(version.value), weight: Number(weight.value) })) }, t('prompts.set_canary')),
      canary ? h('button', { class: 'secondary', id: 'p-uncanary', onclick: act(() => ctx.api.del(`${path}/labels/canary`)) }, t('prompts.end_canary')) : null,
      h('button', { class: 'secondary', id: 'p-promote', onclick: act(() => ctx.api.put(`${path}/labels/production`, { version: Number(version.value) })) }, t('prompts.promote')),
      h('button', { class: 'danger', id: 'p-rollback', onclick: act(() => ctx.api.post(`${path}/rollback`, { label: 'production' })) }, t('prompts.rollback'))),
    error);
}
