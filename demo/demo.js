// Demo-site behaviour: a custom event on the buy button, identify on sign up.
// Firstparty's snippet (window.firstparty) is injected by the `inject` line
// of Caddyfile.example; everything here works without it too.
(function () {
  function fp() { return window.firstparty; }
  var buy = document.getElementById('buy');
  if (buy) {
    buy.addEventListener('click', function () {
      if (fp()) fp().capture('widget_bought', { color: 'blue', price: 12 });
      document.getElementById('bought').hidden = false;
    });
  }
  var form = document.getElementById('signup');
  if (form) {
    var params = new URLSearchParams(location.search);
    if (params.get('email')) {
      if (fp()) fp().identify(params.get('email'), { email: params.get('email'), plan: params.get('plan') || 'hobby' });
      document.getElementById('welcome').hidden = false;
    }
  }
})();
