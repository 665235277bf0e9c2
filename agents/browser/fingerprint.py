"""Element fingerprints and the scoring that heals a broken locator (the approach of Healenium).

After a step's target resolves, the runner stores the element's fingerprint:
tag, role, accessible name, text, test id, id, name, classes, placeholder,
label, DOM path and the neighbouring text. When the locator later finds
nothing, every candidate element on the page is scored against it; a heal is
accepted only when the best score reaches the threshold and beats the second
by the margin, so an ambiguous page is reported, not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

# Runs in the page. describe(el) gives the fingerprint plus the locator candidates of one element;
# the accessible name is approximated (aria-label, labelledby, label, text, title, alt, placeholder).
PAGE_JS = r"""
(() => {
  const IMPLICIT = {BUTTON: 'button', A: 'link', SELECT: 'combobox', TEXTAREA: 'textbox', IMG: 'img',
    H1: 'heading', H2: 'heading', H3: 'heading', H4: 'heading', H5: 'heading', H6: 'heading',
    NAV: 'navigation', LI: 'listitem', UL: 'list', OL: 'list', OPTION: 'option', DIALOG: 'dialog'};
  const INPUT_ROLE = {checkbox: 'checkbox', radio: 'radio', button: 'button', submit: 'button', reset: 'button',
    range: 'slider', number: 'spinbutton', search: 'searchbox'};
  const clean = (s, n) => (s || '').replace(/\s+/g, ' ').trim().slice(0, n || 120);
  const role = (el) => {
    const explicit = el.getAttribute('role');
    if (explicit) return explicit.split(' ')[0];
    if (el.tagName === 'A') return el.hasAttribute('href') ? 'link' : '';
    if (el.tagName === 'INPUT') return INPUT_ROLE[(el.type || 'text').toLowerCase()] || 'textbox';
    return IMPLICIT[el.tagName] || '';
  };
  const labelOf = (el) => {
    if (el.labels && el.labels.length) return clean(el.labels[0].innerText);
    const by = el.getAttribute('aria-labelledby');
    if (by) return clean(by.split(' ').map(id => (document.getElementById(id) || {}).innerText || '').join(' '));
    return '';
  };
  const nameOf = (el) => clean(el.getAttribute('aria-label')) || labelOf(el) ||
    (['INPUT', 'SELECT', 'TEXTAREA'].includes(el.tagName) ? '' : clean(el.innerText)) ||
    clean(el.getAttribute('title')) || clean(el.getAttribute('alt')) ||
    (el.tagName === 'INPUT' && ['submit', 'button'].includes(el.type) ? clean(el.value) : '') ||
    clean(el.getAttribute('placeholder'));
  const path = (el) => {
    const parts = [];
    for (let node = el; node && node.nodeType === 1 && parts.length < 8; node = node.parentElement) {
      const parent = node.parentElement;
      let part = node.tagName.toLowerCase();
      if (parent) {
        const same = [...parent.children].filter(c => c.tagName === node.tagName);
        if (same.length > 1) part += `:nth-of-type(${same.indexOf(node) + 1})`;
      }
      parts.unshift(part);
      if (node.id) { parts[0] = `${node.tagName.toLowerCase()}#${CSS.escape(node.id)}`; break; }
    }
    return parts.join(' > ');
  };
  const neighbours = (el) => {
    const out = [];
    const prev = el.previousElementSibling, next = el.nextElementSibling, parent = el.parentElement;
    for (const n of [prev, next]) if (n) out.push(clean(n.innerText, 60));
    if (parent) out.push(clean(parent.innerText, 120));
    return out.filter(Boolean).join(' | ').slice(0, 240);
  };
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const st = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && st.display !== 'none';
  };
  const describe = (el) => ({
    tag: el.tagName.toLowerCase(), role: role(el), name: nameOf(el), text: clean(el.innerText),
    testid: el.getAttribute('data-testid') || '', id: el.id || '', name_attr: el.getAttribute('name') || '',
    classes: [...el.classList].slice(0, 10), placeholder: el.getAttribute('placeholder') || '',
    label: labelOf(el), path: path(el), neighbours: neighbours(el), visible: visible(el),
    disabled: !!el.disabled, type: el.getAttribute('type') || '',
  });
  const INTERACTIVE = 'a[href],button,input:not([type=hidden]),select,textarea,[role],[data-testid],' +
    '[onclick],[contenteditable=true],label,h1,h2,h3,summary';
  return { describe, INTERACTIVE, candidates: (limit) => [...document.querySelectorAll(INTERACTIVE)]
    .filter(visible).slice(0, limit) };
})()
"""
DESCRIBE_JS = f"(el) => {PAGE_JS}.describe(el)"
CANDIDATES_JS = f"(limit) => {{ const api = {PAGE_JS}; return api.candidates(limit).map(api.describe); }}"

# How much each attribute says about identity; the test id and the name weigh most.
WEIGHTS: dict[str, float] = {
    "tag": 1.0,
    "role": 1.0,
    "name": 2.0,
    "text": 1.5,
    "testid": 1.5,
    "id": 1.0,
    "name_attr": 1.0,
    "classes": 0.75,
    "placeholder": 1.0,
    "label": 1.0,
    "path": 1.0,
    "neighbours": 0.75,
}

NAME_KEPT = 0.75  # the least similarity of accessible names for an element to count as the same one


def _similar(a: str, b: str) -> float:
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def _jaccard(a: list[str], b: list[str]) -> float:
    left, right = set(a), set(b)
    if not left and not right:
        return 1.0
    return len(left & right) / len(left | right)


def score(stored: dict[str, Any], candidate: dict[str, Any]) -> float:
    """0..1: how alike two fingerprints are; attributes empty on both sides do not count."""
    total = weight_sum = 0.0
    for key, weight in WEIGHTS.items():
        a, b = stored.get(key), candidate.get(key)
        if key == "classes":
            if not a and not b:
                continue
            value = _jaccard(list(a or []), list(b or []))
        else:
            a, b = str(a or ""), str(b or "")
            if not a and not b:
                continue
            value = _similar(a, b)
        total += weight * value
        weight_sum += weight
    return total / weight_sum if weight_sum else 0.0


@dataclass(frozen=True, slots=True)
class Match:
    candidate: dict[str, Any]
    score: float
    second: float
    evidence: dict[str, Any]


def best_match(
    stored: dict[str, Any], candidates: list[dict[str, Any]], threshold: float, margin: float
) -> tuple[Match | None, str]:
    """The one candidate clearly most like ``stored``, or None and why not."""
    if not candidates:
        return None, "the page has no candidate elements"
    ranked = sorted(((score(stored, c), i) for i, c in enumerate(candidates)), reverse=True)
    best_score, best_index = ranked[0]
    second = ranked[1][0] if len(ranked) > 1 else 0.0
    if best_score < threshold:
        return None, f"the most similar element scores {best_score:.2f}, below the threshold {threshold:.2f}"
    if best_score - second < margin:
        return None, f"ambiguous: the two most similar elements score {best_score:.2f} and {second:.2f}"
    best = candidates[best_index]
    # A different name means a different element to the user (Submit vs Cancel): that is a change of
    # behaviour for the test to report, never something to heal over.
    old_name, new_name = str(stored.get("name") or ""), str(best.get("name") or "")
    if old_name and new_name and _similar(old_name, new_name) < NAME_KEPT:
        return None, f"the most similar element's name changed from {old_name!r} to {new_name!r}; not healed"
    same = [k for k in WEIGHTS if k != "classes" and stored.get(k) and stored.get(k) == best.get(k)]
    changed = {
        k: [stored.get(k), best.get(k)] for k in ("testid", "id", "name", "text") if stored.get(k) != best.get(k)
    }
    evidence = {"method": "fingerprint", "score": round(best_score, 3), "second": round(second, 3)}
    evidence |= {"unchanged": same, "changed": changed}
    return Match(best, best_score, second, evidence), ""


def locator_candidates(fp: dict[str, Any]) -> list[dict[str, Any]]:
    """Locators for an element, best tier first (each is checked for uniqueness before use)."""
    out: list[dict[str, Any]] = []
    if fp.get("testid"):
        out.append({"testid": fp["testid"]})
    if fp.get("role") and fp.get("name"):
        out.append({"role": fp["role"], "name": fp["name"], "exact": True})
    if fp.get("label"):
        out.append({"label": fp["label"], "exact": True})
    if fp.get("placeholder"):
        out.append({"placeholder": fp["placeholder"], "exact": True})
    if fp.get("text") and len(fp["text"]) <= 80 and fp.get("tag") not in ("input", "select", "textarea"):
        out.append({"text": fp["text"], "exact": True})
    if fp.get("id"):
        out.append({"css": f"#{_css_ident(fp['id'])}"})
    if fp.get("path"):
        out.append({"css": fp["path"]})
    return out


def _css_ident(value: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else f"\\{ch}" for ch in value)
