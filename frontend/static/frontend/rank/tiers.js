// Tier operations: a ranking is an array of tiers, best first, each an array of opaque response
// ids ([["r3"], ["r1", "r2"]] means r3 > r1 = r2). Pure functions: each returns a new array and
// never changes its input, so the page can keep one state and re-render from it.

export function placedIds(tiers) {
  return new Set(tiers.flat());
}

export function unranked(tiers, allIds) {
  const placed = placedIds(tiers);
  return allIds.filter((id) => !placed.has(id));
}

/** Put `id` in a new last tier, or (tie) into the last tier; unchanged if already placed. */
export function place(tiers, id, tie = false) {
  if (placedIds(tiers).has(id)) return tiers;
  if (tie && tiers.length) return [...tiers.slice(0, -1), [...tiers[tiers.length - 1], id]];
  return [...tiers, [id]];
}

/** Take back the last placement: the last id of the last tier. */
export function undo(tiers) {
  if (!tiers.length) return tiers;
  const last = tiers[tiers.length - 1];
  return last.length > 1 ? [...tiers.slice(0, -1), last.slice(0, -1)] : tiers.slice(0, -1);
}

/** Move the tier at `from` so that it ends up at index `to` (clamped). */
export function moveTier(tiers, from, to) {
  if (from < 0 || from >= tiers.length) return tiers;
  const rest = tiers.filter((_, i) => i !== from);
  const at = Math.max(0, Math.min(to, rest.length));
  return [...rest.slice(0, at), tiers[from], ...rest.slice(at)];
}

/** Insert `id` as a tier of its own before index `at` (at = length: last). */
export function insertTier(tiers, at, id) {
  const without = removeId(tiers, id);
  const index = Math.max(0, Math.min(at, without.length));
  return [...without.slice(0, index), [id], ...without.slice(index)];
}

/** Add `id` to the tier at `index` (a tie), taking it out of wherever it was. */
export function tieInto(tiers, index, id) {
  const target = tiers[index];
  if (!target) return tiers;
  const cleaned = tiers.map((tier) => (tier === target ? tier : tier.filter((x) => x !== id)));
  const out = cleaned.map((tier) => (tier === target ? [...tier.filter((x) => x !== id), id] : tier));
  return out.filter((tier) => tier.length);
}

/** Take `id` out of the ranking (empty tiers disappear). */
export function removeId(tiers, id) {
  return tiers.map((tier) => tier.filter((x) => x !== id)).filter((tier) => tier.length);
}

/** Split a tie: the tier at `index` becomes one tier per id, in the same order. */
export function splitTier(tiers, index) {
  if (!tiers[index] || tiers[index].length < 2) return tiers;
  return [...tiers.slice(0, index), ...tiers[index].map((id) => [id]), ...tiers.slice(index + 1)];
}

/** The ranking to submit: a single unranked response can only go last, so it is placed there. */
export function completeWithLast(tiers, allIds) {
  const left = unranked(tiers, allIds);
  return left.length === 1 ? [...tiers, [left[0]]] : tiers;
}

export function isComplete(tiers, allIds) {
  return unranked(tiers, allIds).length === 0;
}

/** Keep only known ids (a draft saved for a task whose responses changed); drop emptied tiers. */
export function sanitize(tiers, allIds) {
  const known = new Set(allIds);
  const seen = new Set();
  const out = [];
  for (const tier of Array.isArray(tiers) ? tiers : []) {
    const kept = (Array.isArray(tier) ? tier : []).filter((id) => known.has(id) && !seen.has(id) && seen.add(id));
    if (kept.length) out.push(kept);
  }
  return out;
}

/** "B > A = C" */
export function describe(tiers, labelOf) {
  return tiers.map((tier) => tier.map(labelOf).join(" = ")).join(" > ");
}
