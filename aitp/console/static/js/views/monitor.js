// Monitor: gateway latency percentiles, the upstream's share of that time and error rate by route, the task queue,
// and for the server admin the ledger, the worker processes, the browser pool and the process's CPU, memory and disk;
// refreshed every 5 s while the page is visible.

import { card, h, mount, table } from '../dom.js';
import { scope } from './common.js';

const EVERY_MS = 5000;

export async function render(ctx, root) {
  const t = ctx.t;
  const body = h('div', { id: 'monitor-body' });
  const stamp = h('p', { class: 'muted', id: 'monitor-at', role: 'status' });
  mount(root, h('h1', { id: 'view-title' }, t('nav.monitor')), stamp, body);
  const load = async () => {
    const snap = await ctx.api.get('/api/monitor', scope(ctx));
    stamp.textContent = t('monitor.at', { at: ctx.fmt.time(snap.at), minutes: Math.round(snap.window_s / 60) });
    mount(body, ...view(ctx, snap));
  };
  await load();
  const timer = setInterval(() => { if (document.visibilityState === 'visible') load().catch(() => {}); }, EVERY_MS);
  return () => clearInterval(timer);
}

function view(ctx, snap) {
  const t = ctx.t, fmt = ctx.fmt;
  const routes = [...snap.routes, snap.totals];
  const out = [
    h('h2', {}, t('monitor.routes')),
    table([
      { label: t('monitor.route'), value: (r) => (r.route === 'all' ? t('monitor.all') : r.route) },
      { label: t('spend.requests'), num: true, value: (r) => fmt.int(r.requests), raw: (r) => r.requests },
      { label: 'p50', num: true, value: (r) => fmt.ms(r.p50_ms), raw: (r) => r.p50_ms },
      { label: 'p95', num: true, value: (r) => fmt.ms(r.p95_ms), raw: (r) => r.p95_ms },
      { label: 'p99', num: true, value: (r) => fmt.ms(r.p99_ms), raw: (r) => r.p99_ms },
      { label: t('monitor.upstream_share'), num: true, name: 'upstream_share', value: (r) => fmt.pct(r.upstream_share), raw: (r) => r.upstream_share },
      { label: t('monitor.overhead_p95'), num: true, name: 'overhead_p95', value: (r) => fmt.ms(r.overhead_p95_ms), raw: (r) => r.overhead_p95_ms },
      { label: t('overview.error_rate'), num: true, value: (r) => fmt.pct(r.error_rate, 2), raw: (r) => r.error_rate },
    ], routes, { label: t('monitor.routes'), rowAttrs: (r) => ({ 'data-route': r.route }) }),
    h('h2', {}, t('monitor.tasks')),
    h('div', { class: 'cards' },
      card(t('monitor.queue'), fmt.int(snap.tasks.queue_depth), { raw: snap.tasks.queue_depth, name: 'queue',
        sub: snap.tasks.oldest_pending_age_s === null ? '' : t('monitor.oldest', { s: fmt.num(snap.tasks.oldest_pending_age_s) }) }),
      card(t('status.running'), fmt.int(snap.tasks.running), { raw: snap.tasks.running, name: 'running' })),
  ];
  const sys = snap.system;
  if (sys) {
    out.push(h('h2', {}, t('monitor.system')), h('div', { class: 'cards' },
      card(t('monitor.ledger'), fmt.ms(sys.ledger.median_ms), { raw: sys.ledger.median_ms, name: 'ledger', sub: `${sys.ledger.backend} · max ${fmt.ms(sys.ledger.max_ms)}` }),
      card(t('monitor.workers'), fmt.int(sys.workers.count), { raw: sys.workers.count, name: 'workers', sub: workersSub(ctx, sys.workers) }),
      card(t('monitor.cpu'), fmt.pct(sys.process.cpu_percent / 100), { raw: sys.process.cpu_percent, name: 'cpu', sub: t('monitor.host_cpu', { pct: fmt.pct(sys.host.cpu_percent / 100), n: sys.host.cpu_count }) }),
      card(t('monitor.memory'), fmt.bytes(sys.process.rss_bytes), { raw: sys.process.rss_bytes, name: 'memory', sub: t('monitor.host_mem', { pct: fmt.pct(sys.host.memory_percent / 100) }) }),
      card(t('monitor.disk'), fmt.pct(sys.disk.percent / 100), { raw: sys.disk.percent, name: 'disk', sub: t('monitor.disk_free', { free: fmt.bytes(sys.disk.free_bytes) }) })));
    // In distributed mode the runs happen in the worker processes: their pools, summed, are the ones in use.
    const pools = sys.workers.browser_pools;
    const summed = sys.workers.mode === 'distributed' && pools && pools.reporting > 0;
    const pool = summed ? pools : sys.browser_pool;
    if (pool) {
      const queueSub = summed ? t('monitor.pool_workers', { n: fmt.int(pools.reporting) })
        : pool.breaker_open ? t('monitor.pool_breaker') : t('monitor.pool_queue_of', { cap: fmt.int(pool.queue_cap) });
      out.push(h('div', { class: 'cards', id: 'browser-pool', dataset: { source: summed ? 'workers' : 'process' } },
        card(t('monitor.pool'), fmt.int(pool.in_use), { raw: pool.in_use, name: 'pool-in-use',
          sub: t('monitor.pool_of', { cap: fmt.int(pool.cap), browsers: fmt.int(pool.browsers), max: fmt.int(pool.max_browsers) }) }),
        card(t('monitor.pool_queue'), fmt.int(pool.queued), { raw: pool.queued, name: 'pool-queue', sub: queueSub })));
    }
    if (sys.workers.items.length) out.push(h('h2', {}, t('monitor.worker_list')), workerTable(ctx, sys.workers.items));
  } else {
    out.push(h('p', { class: 'muted' }, t('monitor.system_admin')));
  }
  return out;
}

function workersSub(ctx, workers) {
  const t = ctx.t;
  if (workers.error) return t('monitor.workers_unknown');
  return `${t('monitor.worker_threads', { n: ctx.fmt.int(workers.threads) })} · ${t(`monitor.mode.${workers.mode}`)}`;
}

function workerTable(ctx, items) {
  const t = ctx.t, fmt = ctx.fmt;
  return table([
    { label: t('monitor.host'), value: (w) => w.host },
    { label: t('monitor.pid'), num: true, value: (w) => String(w.pid), raw: (w) => w.pid },
    { label: t('monitor.threads'), num: true, name: 'threads', value: (w) => fmt.int(w.threads), raw: (w) => w.threads },
    { label: t('monitor.queues'), value: (w) => w.queues.join(', ') },
    { label: t('monitor.age'), num: true, name: 'age', value: (w) => fmt.duration(w.age_s), raw: (w) => w.age_s },
    { label: t('monitor.worker_browsers'), num: true, name: 'browsers',
      value: (w) => (w.status?.browser_pool ? `${fmt.int(w.status.browser_pool.in_use)} / ${fmt.int(w.status.browser_pool.cap)}` : '–'),
      raw: (w) => w.status?.browser_pool?.in_use ?? null },
  ], items, { label: t('monitor.worker_list'), class: 'workers', rowAttrs: (w) => ({ 'data-worker': w.id }) });
}
