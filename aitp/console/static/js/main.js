// The console shell: sign-in, language, project selector, navigation, and the view router (#/view?params).

import { Api, ApiError } from './api.js';
import { h, mount, toast } from './dom.js';
import { I18n } from './i18n.js';
import { Live } from './live.js';
import { WorkStore } from './store.js';

const VIEWS = {
  overview: { load: () => import('./views/overview.js') },
  spend: { load: () => import('./views/spend.js') },
  budgets: { load: () => import('./views/budgets.js') },
  prompts: { load: () => import('./views/prompts.js') },
  workspace: { load: () => import('./views/workspace.js'), needs: 'write' },
  tasks: { load: () => import('./views/tasks.js') },
  monitor: { load: () => import('./views/monitor.js') },
};
const KEY = 'aitp.key';
const PROJECT = 'aitp.project';

const i18n = new I18n();
const state = { ctx: null, cleanup: null, rendering: 0 };

function route() {
  const [path, query = ''] = location.hash.replace(/^#\/?/, '').split('?');
  return { name: VIEWS[path] ? path : 'overview', params: new URLSearchParams(query) };
}

export function go(name, params = {}) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ''));
  const next = `#/${name}${q.toString() ? `?${q}` : ''}`;
  if (location.hash === next) render(); else location.hash = next;
}

function signIn(message) {
  document.title = `${i18n.t('signin.title')} · aitp`;
  mount(document.getElementById('nav'));
  mount(document.getElementById('session'), langPicker());
  const input = h('input', { id: 'key', type: 'password', autocomplete: 'off', required: true, placeholder: 'sk-aitp-…' });
  const error = h('p', { class: 'error', id: 'signin-error', role: 'alert' }, message || '');
  const form = h('form', { class: 'panel signin', onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      await start(input.value.trim());
    } catch (exc) {
      error.textContent = exc instanceof ApiError ? exc.message : String(exc);
    }
  } },
  h('h1', {}, i18n.t('signin.title')),
  h('p', { class: 'muted' }, i18n.t('signin.help')),
  h('label', { for: 'key' }, i18n.t('signin.key')), input,
  h('p', {}, h('button', { type: 'submit', id: 'signin' }, i18n.t('signin.submit'))),
  error);
  mount(document.getElementById('main'), form);
  input.focus();
}

function langPicker() {
  const select = h('select', { id: 'lang', 'aria-label': i18n.t('lang.label'), onchange: (ev) => { i18n.set(ev.target.value); rerender(); } },
    h('option', { value: 'en', selected: i18n.lang === 'en' }, 'English'),
    h('option', { value: 'zh', selected: i18n.lang === 'zh' }, '中文'));
  return select;
}

async function start(key) {
  const api = new Api(key);
  VIEWS[route().name].load(); // fetched while the key is checked, instead of after
  const me = await api.get('/api/me');
  sessionStorage.setItem(KEY, key);
  let projects = [me.project];
  if (me.root) projects = (await api.get('/api/projects')).items.map((p) => p.id);
  const saved = sessionStorage.getItem(PROJECT);
  const project = me.root ? (projects.includes(saved) ? saved : '') : me.project;
  const ctx = {
    api, me, projects, project, i18n, t: (k, v) => i18n.t(k, v), fmt: i18n.fmt, go,
    canWrite: me.root || me.role !== 'viewer',
    canAdmin: me.root || me.role === 'admin',
    store: null, live: null,
  };
  setProject(ctx, project);
  state.ctx = ctx;
  if (!location.hash) location.hash = '#/overview';
  rerender();
}

function setProject(ctx, project) {
  ctx.project = project;
  // Work in progress of the server admin key across "all projects" lives under its own project.
  ctx.store = new WorkStore(project || ctx.me.project, ctx.me.key_id);
  if (ctx.live) ctx.live.close();
  ctx.live = new Live(ctx.api.key, ctx.me.root ? project || '*' : null); // '*': every project
  if (ctx.me.root) sessionStorage.setItem(PROJECT, project);
}

function signOut() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(PROJECT);
  if (state.ctx?.live) state.ctx.live.close();
  if (state.cleanup) state.cleanup();
  state.ctx = null;
  state.cleanup = null;
  state.rendering += 1; // a view still being drawn for the old key must not replace the sign-in form
  signIn();
}

function shell(ctx, current) {
  const t = ctx.t;
  const links = Object.entries(VIEWS)
    .filter(([, v]) => v.needs !== 'write' || ctx.canWrite)
    .map(([name]) => h('a', { href: `#/${name}`, 'aria-current': name === current ? 'page' : null, dataset: { view: name } }, t(`nav.${name}`)));
  mount(document.getElementById('nav'), links);
  const session = [];
  if (ctx.me.root) {
    session.push(h('label', { for: 'project' }, t('project')), h('select', { id: 'project', onchange: (ev) => { setProject(ctx, ev.target.value); rerender(); } },
      h('option', { value: '' }, t('project.all')),
      ctx.projects.map((p) => h('option', { value: p, selected: p === ctx.project }, p))));
  } else {
    session.push(h('span', { id: 'project-name' }, `${t('project')}: ${ctx.me.project}`));
  }
  session.push(
    h('span', { id: 'whoami', title: ctx.me.key_id }, ctx.me.root ? t('role.root') : t(`role.${ctx.me.role}`)),
    h('span', { id: 'live-state', class: 'badge', 'aria-live': 'polite' }, t(`live.${ctx.live.state}`)),
    langPicker(),
    h('button', { class: 'secondary', id: 'signout', onclick: signOut }, t('signout')));
  mount(document.getElementById('session'), session);
  mount(document.getElementById('foot'), t('foot.tz', { tz: ctx.fmt.zone() }));
}

async function render() {
  const ctx = state.ctx;
  if (!ctx) return;
  const { name, params } = route();
  const view = VIEWS[name];
  const ticket = ++state.rendering;
  performance.mark(`start:${name}`);
  if (state.cleanup) { state.cleanup(); state.cleanup = null; }
  shell(ctx, name);
  document.documentElement.lang = ctx.i18n.lang === 'zh' ? 'zh-CN' : 'en';
  document.title = `${ctx.t(`nav.${name}`)} · aitp`;
  const main = document.getElementById('main');
  if (view.needs === 'write' && !ctx.canWrite) { mount(main, h('p', {}, ctx.t('role.cannot'))); return; }
  mount(main, h('p', { class: 'muted' }, ctx.t('loading')));
  try {
    const mod = await view.load();
    if (ticket !== state.rendering) return;
    const root = h('section', { 'aria-labelledby': 'view-title', dataset: { view: name } });
    const cleanup = await mod.render(ctx, root, params);
    if (ticket !== state.rendering) { if (cleanup) cleanup(); return; }
    state.cleanup = cleanup || null;
    mount(main, root);
    main.dataset.ready = name;
    performance.mark(`ready:${name}`); // bench/console.py reads these: the view has its data and handlers
  } catch (exc) {
    if (ticket !== state.rendering) return; // superseded: a newer render or a sign-out owns the page now
    if (exc instanceof ApiError && exc.status === 401) { signOut(); return; }
    mount(main, h('p', { class: 'error', role: 'alert' }, exc.message || String(exc)));
    main.dataset.ready = name;
  }
}

function rerender() { if (state.ctx) render(); else signIn(); }

window.addEventListener('hashchange', () => { if (state.ctx) render(); });
document.addEventListener('aitp-live', (ev) => {
  const badge = document.getElementById('live-state');
  if (badge && state.ctx) badge.textContent = state.ctx.t(`live.${ev.detail}`);
});

const saved = sessionStorage.getItem(KEY);
if (saved) start(saved).catch((exc) => { sessionStorage.removeItem(KEY); signIn(exc.message); });
else signIn();

export { toast };
