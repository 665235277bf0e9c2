// A browser run's per-step results in the Tasks view: status, locator tier, duration, the error with its suggested
// fix, heals (old locator and tier -> new, with confidence) and screenshot thumbnails.
// Screenshots are fetched with the Authorization header and shown as blob: URLs: the key never goes into a URL.

import { h, table } from '../dom.js';

export async function browserRun(ctx, taskId, signal) {
  const t = ctx.t;
  const data = await ctx.api.get(`/api/browser/runs/${encodeURIComponent(taskId)}`);
  const runs = (data.result && data.result.runs) || [];
  const box = h('section', { id: 'browser-run', 'aria-label': t('br.title') }, h('h3', {}, t('br.title')));
  if (!runs.length) { box.append(h('p', { class: 'muted' }, t('br.none'))); return box; }
  const urls = [];
  signal.addEventListener('abort', () => urls.forEach((u) => URL.revokeObjectURL(u)));
  runs.forEach((run, n) => {
    box.append(h('h4', {}, `${run.spec_name || t('br.run', { n: n + 1 })} · `, h('span', { class: `badge ${run.status === 'passed' ? 'ok' : 'failed'}` }, t(`br.s.${run.status}`)),
      ' ', t('br.summary', { passed: run.passed, failed: run.failed, healed: run.healed, skipped: run.skipped, ms: ctx.fmt.ms(run.duration_ms) })));
    box.append(table([
      { label: t('br.step'), num: true, name: 'index', value: (s) => s.index, raw: (s) => s.index },
      { label: t('br.action'), name: 'action', value: (s) => (s.description ? `${s.action} · ${s.description}` : s.action), raw: (s) => s.action },
      { label: t('task.status'), name: 'status', value: (s) => h('span', { class: `badge ${BADGE[s.status] || ''}` }, t(`br.s.${s.status}`)), raw: (s) => s.status },
      { label: t('br.tier'), name: 'tier', value: (s) => (s.tier ? t(`br.tier.${s.tier}`) : '—'), raw: (s) => s.tier },
      { label: t('br.duration'), num: true, name: 'duration', value: (s) => ctx.fmt.ms(s.duration_ms), raw: (s) => s.duration_ms },
      { label: t('br.detail'), name: 'detail', value: (s) => detail(ctx, s) },
      { label: t('br.screenshot'), name: 'screenshot', value: (s) => (s.screenshot ? shot(ctx, taskId, s, urls, signal) : null), raw: (s) => s.screenshot },
    ], run.steps || [], { label: t('br.steps'), rowAttrs: (s) => ({ 'data-step': s.index, 'data-run': n }) }));
  });
  return box;
}

const BADGE = { passed: 'ok', healed: 'reviewing', failed: 'failed', skipped: 'pending' };

function detail(ctx, step) {
  const t = ctx.t;
  const parts = [];
  if (step.error) {
    parts.push(h('div', { class: 'error', dataset: { error: step.error.code || '' } }, step.error.message || '',
      step.error.suggestion ? h('div', {}, h('strong', {}, t('br.suggestion')), ' ', step.error.suggestion) : null));
  }
  if (step.heal) {
    const fix = step.heal;
    parts.push(h('div', { class: 'heal', dataset: { confidence: fix.confidence ?? '' } },
      h('strong', {}, t('br.heal')), ' ', h('code', {}, locator(fix.old_locator)), ` (${tierName(t, fix.old_tier)}) → `,
      h('code', {}, locator(fix.new_locator)), ` (${tierName(t, fix.new_tier)}) · `,
      t('br.confidence', { pct: ctx.fmt.pct(fix.confidence) }), fix.tier_drop ? ` · ${t('br.tier_drop')}` : ''));
  }
  return parts.length ? h('div', {}, parts) : null;
}

function tierName(t, tier) { return tier ? t(`br.tier.${tier}`) : '—'; }

// A locator as the spec writes it: {testid: "save"} -> testid="save"; {role: "button", name: "Save"} -> role=button "Save".
function locator(loc) {
  if (!loc || typeof loc !== 'object') return String(loc ?? '—');
  return Object.entries(loc).map(([k, v]) => (k === 'name' ? JSON.stringify(v) : `${k}=${typeof v === 'string' ? JSON.stringify(v) : v}`)).join(' ');
}

function shot(ctx, taskId, step, urls, signal) {
  const img = h('img', { class: 'shot', alt: ctx.t('br.shot_alt', { n: step.index }), width: 160, dataset: { name: step.screenshot } });
  const link = h('a', { title: step.screenshot }, img);  // gets its href once the image is here
  ctx.api.request('GET', `/api/tasks/${encodeURIComponent(taskId)}/artifacts/${encodeURIComponent(step.screenshot)}`, { raw: true })
    .then((res) => res.blob())
    .then((blob) => {
      if (signal.aborted) return;
      const url = URL.createObjectURL(blob);
      urls.push(url);
      img.src = url;
      link.href = url;
      link.target = '_blank';
    })
    .catch((exc) => { img.alt = `${img.alt}: ${exc.message}`; });
  return link;
}
