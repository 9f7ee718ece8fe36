// node --test: what the page shows after submit?next=true (flow.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { afterSubmit, submitQuery } from "../../../frontend/static/frontend/rank/flow.js";

const task = (id) => ({ id, responses: [] });

test("the submit asks for the task after the prefetched one", () => {
  assert.equal(submitQuery(42), "?next=true&after=42");
  assert.equal(submitQuery(null), "?next=true");
});

test("with a prefetched task: show it, and the answer's next becomes the new prefetch", () => {
  assert.deepEqual(afterSubmit(task(2), { next: task(3), next_empty: null }),
    { show: task(2), prefetched: task(3), empty: null, fetch: false });
});

test("without a prefetched task: show the answer's next", () => {
  assert.deepEqual(afterSubmit(null, { next: task(3), next_empty: null }), { show: task(3), prefetched: null, empty: null, fetch: false });
});

test("nothing after: the reason is kept for when the prefetched one is done, or shown at once", () => {
  const empty = { reason: "all_done", message: "Thank you!" };
  assert.deepEqual(afterSubmit(task(2), { next: null, next_empty: empty }), { show: task(2), prefetched: null, empty, fetch: false });
  assert.deepEqual(afterSubmit(null, { next: null, next_empty: empty }), { show: null, prefetched: null, empty, fetch: false });
});

test("the prefetched task coming back as next is not shown twice", () => {
  assert.deepEqual(afterSubmit(task(2), { next: task(2), next_empty: null }), { show: task(2), prefetched: null, empty: null, fetch: false });
});

test("an answer without next (a replay of an older page's submit) falls back to next-task", () => {
  assert.deepEqual(afterSubmit(null, { ranking_id: 1 }), { show: null, prefetched: null, empty: null, fetch: true });
  assert.deepEqual(afterSubmit(task(2), { ranking_id: 1 }), { show: task(2), prefetched: null, empty: null, fetch: false });
});
