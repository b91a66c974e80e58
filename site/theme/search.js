// Search box of the cvcourse site: every word typed must occur in a page (title or text); titles rank first.
// The index (window.SEARCH_INDEX, written by render.mjs) is a script, so it also works from file://.
(function () {
  const input = document.getElementById('search');
  const list = document.getElementById('search-results');
  const pages = window.SEARCH_INDEX || [];
  if (!input || !list) return;
  const escape = (s) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
  function snippet(text, word) {
    const at = text.toLowerCase().indexOf(word);
    if (at < 0) return '';
    const start = Math.max(0, at - 40);
    return (start > 0 ? '…' : '') + text.slice(start, at + word.length + 60) + '…';
  }
  input.addEventListener('input', function () {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    list.innerHTML = '';
    if (!words.length) return;
    const hits = pages
      .map((p) => {
        const title = p.title.toLowerCase();
        const text = p.text.toLowerCase();
        if (!words.every((w) => title.includes(w) || text.includes(w))) return null;
        const score = words.reduce((s, w) => s + (title.includes(w) ? 100 : 0) + text.split(w).length - 1, 0);
        return { p, score };
      })
      .filter(Boolean)
      .sort((a, b) => b.score - a.score);
    if (!hits.length) {
      list.innerHTML = '<li class="none">No page matches.</li>';
      return;
    }
    list.innerHTML = hits
      .slice(0, 12)
      .map(({ p }) => `<li><a href="${p.file}">${escape(p.title)}</a><small>${escape(snippet(p.text, words[0]))}</small></li>`)
      .join('');
  });
})();
