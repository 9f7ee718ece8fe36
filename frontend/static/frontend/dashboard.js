// Sortable annotator table: click a column header to sort by it; click again to reverse.
// Cells carry their raw value in data-value; empty values sort last.
function compare(kind) {
  return (a, b) => {
    if (a === "" && b === "") return 0;
    if (a === "") return 1;
    if (b === "") return -1;
    return kind === "num" ? Number(a) - Number(b) : a.localeCompare(b);
  };
}

export function makeSortable(table) {
  const headers = [...table.querySelectorAll("thead th")];
  headers.forEach((th, column) => {
    const button = th.querySelector("button[data-sort]");
    if (!button) return;
    button.addEventListener("click", () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      headers.forEach((other) => other.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const body = table.tBodies[0];
      const rows = [...body.rows].filter((row) => row.cells.length === headers.length);
      const cmp = compare(button.dataset.sort);
      const value = (row) => row.cells[column].dataset.value ?? "";
      rows.sort((a, b) => {
        const va = value(a), vb = value(b);
        if (va === "" || vb === "") return cmp(va, vb);  // empty last in both directions
        return ascending ? cmp(va, vb) : cmp(vb, va);
      });
      body.append(...rows);
    });
  });
}

document.querySelectorAll("table.sortable").forEach(makeSortable);
