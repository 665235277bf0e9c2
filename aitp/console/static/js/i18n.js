// Language (English or Chinese, remembered in localStorage), labels and Intl formats for numbers, money and times.

import { MESSAGES } from './messages.js';

const LANG = 'aitp.lang';
const LOCALES = { en: 'en-US', zh: 'zh-CN' };

export class I18n {
  constructor() {
    const saved = localStorage.getItem(LANG);
    this.lang = saved in LOCALES ? saved : (navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
    this.fmt = new Formats(this);
  }

  set(lang) {
    if (!(lang in LOCALES)) return;
    this.lang = lang;
    localStorage.setItem(LANG, lang);
  }

  get locale() { return LOCALES[this.lang]; }

  t(key, vars = {}) {
    let text = MESSAGES[this.lang][key];
    if (text === undefined) {
      console.error(`missing ${this.lang} label: ${key}`);
      text = MESSAGES.en[key] ?? key;
    }
    return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
  }
}

class Formats {
  constructor(i18n) { this.i18n = i18n; this.cache = new Map(); }

  nf(key, options) {
    const id = `${this.i18n.locale}|${key}`;
    if (!this.cache.has(id)) this.cache.set(id, new Intl.NumberFormat(this.i18n.locale, options));
    return this.cache.get(id);
  }

  num(value) { return value === null || value === undefined ? '—' : this.nf('num', { maximumFractionDigits: 2 }).format(value); }

  int(value) { return value === null || value === undefined ? '—' : this.nf('int', { maximumFractionDigits: 0 }).format(value); }

  // Model prices are fractions of a cent: small amounts keep six decimals, larger ones two.
  usd(value) {
    if (value === null || value === undefined) return '—';
    const small = Math.abs(value) < 1;
    return this.nf(small ? 'usd6' : 'usd2', { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: small ? 6 : 2 }).format(value);
  }

  pct(ratio, digits = 1) {
    return ratio === null || ratio === undefined ? '—' : this.nf(`pct${digits}`, { style: 'percent', maximumFractionDigits: digits }).format(ratio);
  }

  ms(value) { return value === null || value === undefined ? '—' : `${this.nf('ms', { maximumFractionDigits: 1 }).format(value)} ms`; }

  // A duration in the largest unit that keeps it readable: 45 s, 12 min, 3.5 h (Intl names the unit per language).
  duration(seconds) {
    if (seconds === null || seconds === undefined) return '—';
    const [unit, value] = seconds < 120 ? ['second', seconds] : seconds < 7200 ? ['minute', seconds / 60] : ['hour', seconds / 3600];
    return this.nf(`dur-${unit}`, { style: 'unit', unit, unitDisplay: 'short', maximumFractionDigits: unit === 'hour' ? 1 : 0 }).format(value);
  }

  bytes(value) {
    if (value === null || value === undefined) return '—';
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let v = value, u = 0;
    while (v >= 1024 && u < units.length - 1) { v /= 1024; u += 1; }
    return `${this.nf('b', { maximumFractionDigits: 1 }).format(v)} ${units[u]}`;
  }

  // Formatters are built once per language: constructing one costs far more than formatting with it.
  df(key, options) {
    const id = `${this.i18n.locale}|${key}`;
    if (!this.cache.has(id)) this.cache.set(id, new Intl.DateTimeFormat(this.i18n.locale, options));
    return this.cache.get(id);
  }

  time(iso) {
    if (!iso) return '—';
    return this.df('time', {
      year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', timeZoneName: 'short',
    }).format(new Date(iso));
  }

  // A bucket label: '2026-12-07' (a UTC day) or '2026-12-07T16:00:00Z' (an hour, shown in local time).
  bucket(label) {
    if (label.length === 10) return this.df('day', { month: 'short', day: 'numeric', timeZone: 'UTC' }).format(new Date(`${label}T00:00:00Z`));
    return this.df('hour', { month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit' }).format(new Date(label));
  }

  zone() {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const offset = -new Date().getTimezoneOffset();
    const sign = offset >= 0 ? '+' : '-';
    const hh = String(Math.floor(Math.abs(offset) / 60)).padStart(2, '0');
    const mm = String(Math.abs(offset) % 60).padStart(2, '0');
    return `${zone} (UTC${sign}${hh}:${mm})`;
  }
}
