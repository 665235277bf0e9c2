// Overview: today's spend against budget, requests and errors, tasks by state, gateway p95, recent tasks; live.

import { card, debounce, h, mount, table } from '../dom.js';
import { applyNotice, scope, taskColumns, utcToday } from './common.js';

export async function render(ctx, root) {
  const t = ctx.t;
  const cards = h('div', { class: 'cards', id: 'cards' });
  const recent = h('div', { id: 'recent' });
  mount(root, h('h1', { id: 'view-title' }, t('nav.overview')), cards, h('h2', {}, t('overview.recent')), recent);

  async function loadCards() {
    const [usage, stats, monitor, budgets] = await Promise.all([
      ctx.api.get('/api/usage', scope(ctx, { from: utcToday(), group_by: 'day' })),
      ctx.api.get('/api/tasks/stats', scope(ctx)),
      ctx.api.get('/api/monitor', scope(ctx)),
      ctx.api.get('/api/budgets/overview', scope(ctx)),
    ]);
    mount(cards, ...overviewCards(ctx, usage, stats, monitor, budgets));
  }

  async function loadTasks() {
    const found = await ctx.api.get('/api/tasks', scope(ctx, { limit: 10 }));
    mount(recent, found.items.length
      ? table(taskColumns(ctx), found.items, { label: t('overview.recent'), rowAttrs: (r) => ({ 'data-task': r.id }) })
      : h('p', { class: 'muted' }, t('tasks.none')));
  }

  await Promise.all([loadCards(), loadTasks()]);
  // Live: notices update rows in place; counts are re-read at most every 1.5 s, however busy the project is.
  const refreshCards = debounce(() => loadCards().catch(() => {}), 1500);
  const refreshTasks = debounce(() => loadTasks().catch(() => {}), 1500);
  return ctx.live.on((notice) => {
    if (!applyNotice(ctx, recent, notice)) refreshTasks();
    if (notice.type !== 'task_progress') refreshCards();
  });
}

export function overviewCards(ctx, usage, stats, monitor, budgets) {
  const t = ctx.t, fmt = ctx.fmt;
  const totals = usage.totals;
  const day = budgets.items.find((b) => b.period === 'day' && b.scope === 'project' && b.status.usd);
  const spendSub = day
    ? t('overview.of_budget', { limit: fmt.usd(day.status.usd.limit), pct: fmt.pct(day.status.usd.used_ratio) })
    : t('overview.no_day_budget');
  const errorRate = totals.requests ? totals.errors / totals.requests : null;
  const by = stats.by_status || {};
  return [
    card(t('overview.spend_today'), fmt.usd(totals.cost_usd), { raw: totals.cost_usd, sub: spendSub, name: 'spend' }),
    card(t('overview.requests_today'), fmt.int(totals.requests), { raw: totals.requests, sub: `${t('overview.error_rate')} ${fmt.pct(errorRate)}`, name: 'requests' }),
    card(t('status.running'), fmt.int(by.running || 0), { raw: by.running || 0, name: 'running' }),
    card(t('overview.waiting_review'), fmt.int(by.reviewing || 0), { raw: by.reviewing || 0, name: 'reviewing' }),
    card(t('status.failed'), fmt.int(by.failed || 0), { raw: by.failed || 0, name: 'failed' }),
    card(t('overview.p95'), fmt.ms(monitor.totals.p95_ms), { raw: monitor.totals.p95_ms, sub: t('overview.last_15m'), name: 'p95' }),
  ];
}
