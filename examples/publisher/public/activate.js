// "Activating your subscription…": asks the site (which asks tollgate) whether the reader's
// subscription has arrived from Stripe's webhooks, every second for up to two minutes, then shows
// "You're subscribed". No blind wait: the page changes the moment tollgate knows.
(() => {
  const root = document.getElementById('activation');
  if (!root) return;
  const statusUrl = root.dataset.statusUrl;
  const deadline = Date.now() + 120_000;
  const show = (name) => {
    for (const part of root.querySelectorAll('.pending, .done, .slow')) {
      part.hidden = !part.classList.contains(name);
    }
  };
  async function poll() {
    try {
      const response = await fetch(statusUrl, { headers: { accept: 'application/json' }, cache: 'no-store' });
      if (response.ok) {
        const status = await response.json();
        if (status.subscribed) {
          show('done');
          return;
        }
      }
    } catch {
      // the site or tollgate is briefly away: ask again
    }
    if (Date.now() > deadline) {
      show('slow');
      return;
    }
    setTimeout(poll, 1000);
  }
  poll();
})();
