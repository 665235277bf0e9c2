// Budgets: a bar per budget and unit (used and reserved against the limit), reset, action, burn-down forecast,
// recent alerts; admins create, change and delete budgets, with the API's validation messages at the field.

import { ApiError } from '../api.js';
import { badge, h, mount, table, toast } from '../dom.js';
import { scope } from './common.js';

const FIELDS = ['project', 'name', 'scope', 'scope_id', 'period', 'limit_tokens', 'limit_usd', 'action', 'downgrade_at'];

export function budgetLines(items) {
  const lines = [];
  for (const b of items) {
    for (const unit of ['tokens', 'usd']) {
      const s = b.status[unit];
      if (!s) continue;
      lines.push({ budget: b, unit, s, ratio: (s.used + s.reserved) / s.limit, forecast: (b.forecast || {})[unit] });
    }
  }
  return lines;
}

export async function render(ctx, root) {
  const t = ctx.t, fmt = ctx.fmt;
  const [overview, alerts] = await Promise.all([
    ctx.api.get('/api/budgets/overview', scope(ctx)),
    ctx.api.get('/api/alerts', scope(ctx, { limit: 20 })),
  ]);
  const amount = (unit, v) => (unit === 'usd' ? fmt.usd(v) : fmt.int(v));
  const lines = budgetLines(overview.items);
  const form = ctx.canAdmin ? budgetForm(ctx) : null;

  const bars = lines.length ? table([
    { label: t('budget.name'), value: (l) => l.budget.name },
    ctx.me.root ? { label: t('project'), value: (l) => l.budget.project } : null,
    { label: t('budget.scope'), value: (l) => `${t(`budget.scope.${l.budget.scope}`)}${l.budget.scope === 'project' ? '' : `: ${l.budget.scope_id}`}` },
    { label: t('budget.period'), value: (l) => t(`budget.period.${l.budget.period}`) },
    { label: t('budget.used'), name: 'bar', value: (l) => h('div', {},
      h('div', { class: 'bar', role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': l.s.limit, 'aria-valuenow': l.s.used + l.s.reserved, 'aria-label': `${l.budget.name} ${l.unit}` },
        h('span', { class: 'used', style: `width:${Math.min(100, (l.s.used / l.s.limit) * 100)}%` }),
        h('span', { class: 'reserved', style: `left:${Math.min(100, (l.s.used / l.s.limit) * 100)}%;width:${Math.min(100, (l.s.reserved / l.s.limit) * 100)}%` })),
      h('div', { class: 'muted' }, t('budget.used_of', { used: amount(l.unit, l.s.used), reserved: amount(l.unit, l.s.reserved), limit: amount(l.unit, l.s.limit) }))) },
    { label: '%', num: true, name: 'pct', value: (l) => fmt.pct(l.ratio), raw: (l) => l.ratio },
    { label: t('budget.resets'), value: (l) => (l.s.resets_at ? fmt.time(l.s.resets_at) : t('budget.never')) },
    { label: t('budget.action'), value: (l) => h('span', {}, t(`budget.action.${l.budget.action}`), ' ', badge(t(`budget.now.${l.budget.status.current_action}`), l.budget.status.current_action)) },
    { label: t('budget.forecast'), name: 'forecast', value: (l) => forecastText(ctx, l.forecast) },
    ctx.canAdmin ? { label: t('actions'), value: (l) => h('div', { class: 'row' },
      h('button', { class: 'secondary', onclick: () => form.fill(l.budget) }, t('edit')),
      h('button', { class: 'danger', onclick: () => remove(ctx, l.budget) }, t('delete'))) } : null,
  ].filter(Boolean), lines, {
    label: t('nav.budgets'), class: 'budgets',
    rowClass: (l) => (l.ratio >= 1 ? 'over' : l.ratio >= 0.8 ? 'warn' : ''),
    rowAttrs: (l) => ({ 'data-budget': l.budget.id, 'data-unit': l.unit }),
  }) : h('p', { class: 'muted' }, t('budget.none'));

  const alertTable = alerts.items.length ? table([
    { label: t('alert.when'), value: (a) => fmt.time(a.created_at) },
    { label: t('budget.name'), value: (a) => (overview.items.find((b) => b.id === a.budget_id) || {}).name || a.budget_id },
    { label: t('alert.threshold'), num: true, value: (a) => fmt.pct(a.threshold, 0) },
    { label: t('alert.used'), num: true, value: (a) => `${amount(a.unit, a.used)} / ${amount(a.unit, a.limit)}` },
    { label: t('alert.window'), value: (a) => a.window },
  ], alerts.items, { label: t('budget.alerts'), class: 'alerts' }) : h('p', { class: 'muted' }, t('alert.none'));

  mount(root, h('h1', { id: 'view-title' }, t('nav.budgets')),
    h('p', { class: 'muted' }, t('budget.legend')),
    h('div', { class: 'scroll' }, bars),
    h('h2', {}, t('budget.alerts')), alertTable,
    form ? [h('h2', { id: 'budget-form-title' }, t('budget.edit_title')), form.el] : null);
}

function forecastText(ctx, f) {
  if (!f) return '—';
  if (f.remaining <= 0) return ctx.t('forecast.exhausted');
  if (!f.runs_out_at) return ctx.t('forecast.no_spend');
  if (!f.before_reset) return ctx.t('forecast.lasts');
  return ctx.t('forecast.runs_out', { at: ctx.fmt.time(f.runs_out_at) });
}

async function remove(ctx, budget) {
  if (!window.confirm(ctx.t('budget.confirm_delete', { name: budget.name }))) return;
  try {
    await ctx.api.del(`/api/budgets/${encodeURIComponent(budget.id)}`);
    ctx.go('budgets');
  } catch (exc) { toast(exc.message); }
}

function budgetForm(ctx) {
  const t = ctx.t;
  const errors = {};
  const inputs = {};
  const field = (name, control) => {
    inputs[name] = control;
    control.id = `b-${name}`;
    errors[name] = h('div', { class: 'field-error', id: `b-${name}-error`, role: 'alert' });
    control.setAttribute('aria-describedby', errors[name].id);
    return h('div', { class: 'field' }, h('label', { for: control.id }, t(`budget.f.${name}`), control), errors[name]);
  };
  const options = (values, prefix) => values.map((v) => h('option', { value: v }, prefix ? t(`${prefix}.${v}`) : v));
  const projects = ctx.me.root ? ctx.projects : [ctx.me.project];
  const general = h('p', { class: 'error', role: 'alert', id: 'b-error' });
  const el = h('form', { class: 'panel filters', id: 'budget-form', novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    for (const e of Object.values(errors)) e.textContent = '';
    general.textContent = '';
    const spec = {};
    for (const name of FIELDS) {
      const raw = inputs[name].value.trim();
      if (raw === '') continue;
      spec[name] = ['limit_tokens'].includes(name) ? Number(raw) : ['limit_usd', 'downgrade_at'].includes(name) ? Number(raw) : raw;
    }
    try {
      await ctx.api.put('/api/budgets', spec);
      toast(t('budget.saved'));
      ctx.go('budgets');
    } catch (exc) {
      if (!(exc instanceof ApiError)) throw exc;
      const target = errors[exc.param];
      if (target) { target.textContent = exc.message; inputs[exc.param].setAttribute('aria-invalid', 'true'); inputs[exc.param].focus(); }
      else general.textContent = exc.message;
    }
  } },
  field('project', h('select', {}, options(projects))),
  field('name', h('input', { type: 'text', maxlength: 128 })),
  field('scope', h('select', {}, options(['project', 'key', 'user'], 'budget.scope'))),
  field('scope_id', h('input', { type: 'text' })),
  field('period', h('select', {}, options(['day', 'month', 'total'], 'budget.period'))),
  field('limit_tokens', h('input', { type: 'number', min: 1, step: 1 })),
  field('limit_usd', h('input', { type: 'number', min: 0, step: 'any' })),
  field('action', h('select', {}, options(['alert', 'downgrade', 'block'], 'budget.action'))),
  field('downgrade_at', h('input', { type: 'number', min: 0, max: 1, step: 0.05, placeholder: '0.9' })),
  h('div', {}, h('button', { type: 'submit', id: 'b-save' }, t('save'))), general);
  if (ctx.project) inputs.project.value = ctx.project;
  return {
    el,
    fill(b) {
      for (const name of FIELDS) {
        const v = name === 'project' ? b.project : b[name];
        inputs[name].value = v === null || v === undefined ? '' : String(v);
      }
      if (b.scope === 'project') inputs.scope_id.value = '';
      inputs.name.focus();
    },
  };
}
