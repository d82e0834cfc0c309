"use strict";
// Filters the job cards by words and status, sorts them, and keeps the choice in the address
// (#q=…&status=…&sort=…) so that reloading the page, rewritten as jobs finish, keeps the view.
(function () {
  const list = document.getElementById("jobs");
  const filter = document.getElementById("filter");
  const status = document.getElementById("status");
  const sort = document.getElementById("sort");
  const shown = document.getElementById("shown");
  const cards = Array.from(list.querySelectorAll("article.job"));
  const words = new Map(cards.map((card) => [card, card.textContent.toLowerCase()]));
  const rank = { failed: 0, cancelled: 1, queued: 2, waiting: 3, ok: 4 };
  const number = (card, key) => Number(card.dataset[key] || 0);
  const orders = {
    job: (a, b) => number(a, "job") - number(b, "job"),
    finished: (a, b) => number(b, "finished") - number(a, "finished"),
    seconds: (a, b) => number(b, "seconds") - number(a, "seconds"),
    status: (a, b) => rank[a.dataset.status] - rank[b.dataset.status],
  };

  function show() {
    const terms = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    let count = 0;
    for (const card of cards) {
      const text = words.get(card);
      const visible =
        (!status.value || card.dataset.status === status.value) && terms.every((term) => text.includes(term));
      card.hidden = !visible;
      if (visible) count += 1;
    }
    shown.textContent = count === cards.length ? `${cards.length} jobs` : `${count} of ${cards.length} jobs shown`;
    remember();
  }

  function arrange() {
    const order = orders[sort.value] || orders.job;
    const sorted = cards.slice().sort((a, b) => order(a, b) || orders.job(a, b));
    list.append(...sorted);
    remember();
  }

  function remember() {
    const state = new URLSearchParams();
    if (filter.value) state.set("q", filter.value);
    if (status.value) state.set("status", status.value);
    if (sort.value !== "job") state.set("sort", sort.value);
    const hash = state.toString();
    if (hash || location.hash) history.replaceState(null, "", hash ? `#${hash}` : location.pathname);
  }

  const saved = new URLSearchParams(location.hash.slice(1));
  if (saved.has("q")) filter.value = saved.get("q");
  if (saved.has("status")) status.value = saved.get("status");
  if (saved.has("sort") && saved.get("sort") in orders) sort.value = saved.get("sort");
  filter.addEventListener("input", show);
  status.addEventListener("change", show);
  sort.addEventListener("change", arrange);
  if (sort.value !== "job") arrange();
  show();
})();
