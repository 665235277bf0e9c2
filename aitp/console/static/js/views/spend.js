// Spend: cost and tokens over time stacked by tier or model, the turbo/plus split and savings against all-plus,
// cost per artefact, filters (range, project, key) and a CSV download of the rows in view.

import { card, download, h, mount, table } from '../dom.js';
import { COLOURS, stackedBars } from '../chart.js';
import { scope } from './common.js';

const RANGES = { '24h': 24, '7d': 24 * 7, '30d': 24 * 30 };
const TARGET_SAVING = 0.65; // the plan's aim for routing: 65% below sending everything to plus

export function windowOf(params) {
  const range = params.get('range') || '7d';
  if (range === 'custom') return { range, from: params.get('from') || undefined, to: params.get('to') || undefined };
  const hours = RANGES[range] || RANGES['7d'];
  const from = new Date(Date.now() - hours * 3600 * 1000);
  from.setUTCMinutes(0, 0, 0);
  return { range, from: from.toISOString(), to: undefined };
}

export async function render(ctx, root, params) {
  const t = ctx.t, fmt = ctx.fmt;
  const win = windowOf(params);
  const bucket = params.get('bucket') || (win.range === '24h' ? 'hour' : 'day');
  const stack = params.get('stack') || 'tier';
  const metric = params.get('metric') || 'cost_usd';
  const key = params.get('key') || '';
  const q = scope(ctx, { from: win.from, to: win.to, key: key || undefined });
  const keys = ctx.canAdmin ? ctx.api.get('/api/keys', scope(ctx)).then((r) => r.items).catch(() => []) : Promise.resolve([]);
  const [series, savings, tiers, artefacts, keyList] = await Promise.all([
    ctx.api.get('/api/usage/series', { ...q, bucket, stack }),
    ctx.api.get('/api/usage/savings', q),
    ctx.api.get('/api/usage', { ...q, group_by: 'tier' }),
    ctx.api.get('/api/usage/artefacts', q),
    keys,
  ]);

  const current = { range: win.range, from: params.get('from'), to: params.get('to'), bucket, stack, metric, key };
  const change = (name) => (ev) => ctx.go('spend', { ...current, [name]: ev.target.value });
  const select = (id, name, value, options) => h('label', {}, t(`spend.${name}`),
    h('select', { id, onchange: change(name) }, options.map(([v, label]) => h('option', { value: v, selected: v === value }, label))));
  const filters = h('div', { class: 'filters', role: 'group', 'aria-label': t('spend.filters') },
    select('f-range', 'range', win.range, [['24h', t('spend.24h')], ['7d', t('spend.7d')], ['30d', t('spend.30d')], ['custom', t('spend.custom')]]),
    win.range === 'custom' ? [
      h('label', {}, t('spend.from'), h('input', { id: 'f-from', type: 'date', value: (current.from || '').slice(0, 10), onchange: change('from') })),
      h('label', {}, t('spend.to'), h('input', { id: 'f-to', type: 'date', value: (current.to || '').slice(0, 10), onchange: change('to') })),
    ] : null,
    select('f-bucket', 'bucket', bucket, [['hour', t('spend.hour')], ['day', t('spend.day')]]),
    select('f-stack', 'stack', stack, [['tier', t('spend.by_tier')], ['model', t('spend.by_model')]]),
    select('f-metric', 'metric', metric, [['cost_usd', t('spend.cost')], ['tokens', t('spend.tokens')]]),
    select('f-key', 'key', key, [['', t('spend.all_keys')], ...keyList.map((k) => [k.id, `${k.name} (${k.id.slice(0, 8)})`]),
      ...(!ctx.canAdmin ? [[ctx.me.key_id, t('spend.this_key')]] : [])]));

  const fmtY = metric === 'tokens' ? (v) => fmt.int(v) : (v) => fmt.usd(v);
  const chart = stackedBars({
    labels: series.buckets,
    series: series.series.map((s) => ({ key: s.key, values: s[metric] })),
    fmtY, fmtX: (l) => fmt.bucket(l), title: t('spend.chart', { metric: t(metric === 'tokens' ? 'spend.tokens' : 'spend.cost') }),
  });
  const legend = h('div', { class: 'legend' }, series.series.map((s, i) =>
    h('span', {}, h('i', { style: `background:${COLOURS[i % COLOURS.length]}` }), `${s.key}: ${fmtY(metric === 'tokens' ? s.total_tokens : s.total_cost_usd)}`)));

  const saved = savings.saved_ratio;
  const summary = h('div', { class: 'cards', id: 'spend-cards' },
    card(t('spend.total_cost'), fmt.usd(series.totals.cost_usd), { raw: series.totals.cost_usd, name: 'cost' }),
    card(t('spend.total_tokens'), fmt.int(series.totals.tokens), { raw: series.totals.tokens, name: 'tokens' }),
    card(t('spend.requests'), fmt.int(series.totals.requests), { raw: series.totals.requests, name: 'requests' }),
    card(t('spend.turbo_share'), fmt.pct(savings.turbo_share), { raw: savings.turbo_share, sub: t('spend.auto_calls', { n: fmt.int(savings.auto_requests) }), name: 'turbo-share' }),
    card(t('spend.saved'), fmt.usd(savings.saved_usd), {
      raw: savings.saved_usd, name: 'saved',
      sub: saved === null ? t('spend.no_auto') : t('spend.saved_vs', { pct: fmt.pct(saved), all: fmt.usd(savings.all_plus_cost_usd), target: fmt.pct(TARGET_SAVING, 0) }),
    }));

  const tierTotal = tiers.totals.cost_usd || 0;
  const tierTable = table([
    { label: t('spend.tier'), value: (r) => r.key },
    { label: t('spend.requests'), num: true, value: (r) => fmt.int(r.requests), raw: (r) => r.requests },
    { label: t('spend.tokens'), num: true, value: (r) => fmt.int(r.total_tokens), raw: (r) => r.total_tokens },
    { label: t('spend.cost'), num: true, name: 'cost', value: (r) => fmt.usd(r.cost_usd), raw: (r) => r.cost_usd },
    { label: t('spend.cost_share'), num: true, value: (r) => fmt.pct(tierTotal ? r.cost_usd / tierTotal : null) },
  ], tiers.groups, { label: t('spend.split'), class: 'tiers' });

  const g = artefacts.generation, b = artefacts.browser;
  const perArtefact = h('div', { class: 'cards', id: 'artefact-cards' },
    card(t('spend.per_case'), fmt.usd(g.cost_per_generated_case_usd), { raw: g.cost_per_generated_case_usd, sub: t('spend.cases', { n: fmt.int(g.generated_cases) }), name: 'per-case' }),
    card(t('spend.per_accepted'), fmt.usd(g.cost_per_accepted_case_usd), { raw: g.cost_per_accepted_case_usd, sub: t('spend.accepted', { n: fmt.int(g.accepted_cases) }), name: 'per-accepted' }),
    card(t('spend.per_run'), fmt.usd(b.cost_per_run_usd), { raw: b.cost_per_run_usd, sub: t('spend.runs', { n: fmt.int(b.runs) }), name: 'per-run' }));

  const rows = usageRows(series);
  const tableBox = h('div', { class: 'scroll', id: 'usage-table' });
  const csv = h('button', { class: 'secondary', id: 'csv', onclick: () => download(`aitp-spend-${bucket}-${stack}.csv`, toCsv(rows, bucket, stack), 'text/csv;charset=utf-8') }, t('spend.csv'));
  mount(root,
    h('h1', { id: 'view-title' }, t('nav.spend')), filters,
    h('p', { class: 'muted' }, t('spend.window', { from: fmt.time(series.from), to: fmt.time(series.to) }), ' ', bucket === 'day' ? t('spend.utc_days') : ''),
    chart, legend, summary,
    h('div', { class: 'grid2' },
      h('div', {}, h('h2', {}, t('spend.split')), tierTable),
      h('div', {}, h('h2', {}, t('spend.per_artefact')), perArtefact)),
    h('h2', {}, t('spend.rows', { n: fmt.int(rows.length) })), h('div', { class: 'row' }, csv), tableBox);
  renderUsageTable(ctx, tableBox, rows, stack);
}

export function usageRows(series) {
  const rows = [];
  series.buckets.forEach((bucket, i) => {
    for (const s of series.series) {
      if (!s.requests[i]) continue;
      rows.push({ bucket, key: s.key, requests: s.requests[i], tokens: s.tokens[i], cost_usd: s.cost_usd[i] });
    }
  });
  return rows;
}

export function renderUsageTable(ctx, box, rows, stack) {
  const t = ctx.t, fmt = ctx.fmt;
  performance.mark('usage-table-start');
  mount(box, table([
    { label: t('spend.bucket_col'), value: (r) => fmt.bucket(r.bucket), raw: (r) => r.bucket },
    { label: t(stack === 'tier' ? 'spend.tier' : 'spend.model'), value: (r) => r.key },
    { label: t('spend.requests'), num: true, value: (r) => fmt.int(r.requests), raw: (r) => r.requests },
    { label: t('spend.tokens'), num: true, value: (r) => fmt.int(r.tokens), raw: (r) => r.tokens },
    { label: t('spend.cost'), num: true, value: (r) => fmt.usd(r.cost_usd), raw: (r) => r.cost_usd },
  ], rows, { label: t('spend.rows', { n: rows.length }) }));
  performance.mark('usage-table-end');
  performance.measure('usage-table', 'usage-table-start', 'usage-table-end');
}

function toCsv(rows, bucket, stack) {
  const cell = (v) => {
    const s = String(v);
    const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s; // no spreadsheet formulas from a model name
    return /[",\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
  };
  const lines = [[bucket, stack, 'requests', 'tokens', 'cost_usd'].join(',')];
  for (const r of rows) lines.push([r.bucket, r.key, r.requests, r.tokens, r.cost_usd].map(cell).join(','));
  return `\ufeff${lines.join('\r\n')}\r\n`;
}
