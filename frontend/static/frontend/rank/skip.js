// A skip that can be undone for a few seconds: the task leaves the screen at once, but the skip
// is sent only when the undo window closes (or earlier, before anything else asks the server for
// a task: the skipped lease would otherwise be handed back as "your current task").

export function createPendingSkip({ send, delayMs = 6000, timers = globalThis }) {
  let pending = null; // {task, reason, timer, promise}

  function fire() {
    if (!pending) return Promise.resolve(null);
    const { task, reason, timer } = pending;
    timers.clearTimeout(timer);
    pending = null;
    return send(task, reason);
  }

  return {
    /** Start the undo window for skipping `task` with `reason`; an earlier pending skip is sent now. */
    start(task, reason, onSent) {
      const before = fire();
      const entry = { task, reason, timer: null };
      entry.timer = timers.setTimeout(() => {
        if (pending === entry) Promise.resolve(fire()).then((result) => onSent && onSent(result, task));
      }, delayMs);
      pending = entry;
      return before;
    },
    /** Undo: the task back, nothing sent; null when the window has closed. */
    undo() {
      if (!pending) return null;
      const { task, timer } = pending;
      timers.clearTimeout(timer);
      pending = null;
      return task;
    },
    /** Send the pending skip now (before fetching a task); resolves once it is answered. */
    flush: fire,
    get pending() { return pending ? { task: pending.task, reason: pending.reason } : null; },
  };
}
