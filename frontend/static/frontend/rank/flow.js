// What the page shows after a submit answered with ?next=true (docs/ranking.md): one request per ranking.
//
// The submit names the prefetched task as `after`, so the server's `next` is the one after it:
// the page shows its prefetched task and keeps `next` as the new prefetch. Without a prefetched
// task the server's `next` is shown. Pure, so node tests it (tests/frontend/js/flow.test.mjs).

/** The submit's query: next=true, and after=<prefetched id> when one is waiting. */
export function submitQuery(prefetchedId) {
  return prefetchedId ? `?next=true&after=${prefetchedId}` : "?next=true";
}

/**
 * From the prefetched task (or null) and the submit's answer: `show` (the task to show, or null),
 * `prefetched` (the one waiting after it, or null), `empty` (the 204-like reason, or null) and
 * `fetch` (true: nothing came with the answer, ask next-task as before).
 */
export function afterSubmit(prefetched, data) {
  if (!data || !("next" in data)) return { show: prefetched, prefetched: null, empty: null, fetch: !prefetched };
  const next = data.next && (!prefetched || data.next.id !== prefetched.id) ? data.next : null;
  const empty = data.next ? null : data.next_empty || null;
  if (prefetched) return { show: prefetched, prefetched: next, empty, fetch: false };
  return { show: next, prefetched: null, empty, fetch: false };
}
