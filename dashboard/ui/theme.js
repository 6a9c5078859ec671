// Applies the remembered theme before the page paints (a classic script in
// <head>, so a dark-mode user sees no white flash).
(function () {
  try {
    var t = localStorage.getItem('fp-theme');
    if (t === 'dark' || t === 'light') document.documentElement.dataset.theme = t;
  } catch (e) { /* storage may be disabled */ }
})();
